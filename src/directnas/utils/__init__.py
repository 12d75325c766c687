"""Small helpers every stage uses: atomic file io, devices, torch.distributed, threads and seeds."""

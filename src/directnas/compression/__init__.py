"""Model compression for deployment: prune, share, huffman, fixed-point, lowrank, ternary, int8."""

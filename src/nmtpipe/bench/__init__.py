"""`nmtpipe bench`: training and translation speed against the measured matmul roof."""

"""mucomp: the Machine Unlearning Comparator core (no UI code here)."""

import os

__version__ = "0.1.0"

# Matrix products give the same bits whatever the thread count: MKL's conditional numerical
# reproducibility in strict mode (its GEMMs otherwise split a reduction by thread). torch reads it
# at its first matrix product, so it is set before any mucomp module imports torch. Measured: the
# fmnist_cnn and digits_cnn weights after training are bit-identical at 1 and 2 threads with it,
# and differ without it; 1-thread results are unchanged and the speed is the same.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

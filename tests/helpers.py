"""Small assertions several test modules share."""

import torch


def same_weights(a, b) -> bool:
    """Whether two modules hold bit-identical state dicts."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)

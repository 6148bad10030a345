"""Uploaded weights files: the good ones load, every bad one is refused with a clear message."""

import io
import os
import pickle

import pytest
import torch
from safetensors.torch import save as save_safetensors

from mucomp.data import DATASETS
from mucomp.models import build_model
from mucomp.uploads import MAX_UPLOAD_BYTES, UploadError, load_uploaded_model, read_state_dict

DIGITS = DATASETS["digits"]


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def digits_state():
    torch.manual_seed(0)
    return build_model("digits_cnn", 10).state_dict()


def test_a_pth_state_dict_loads(digits_state):
    model = load_uploaded_model("model.pth", torch_bytes(digits_state), DIGITS)
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, digits_state[key])


def test_a_safetensors_state_dict_loads(digits_state):
    data = save_safetensors({k: v.contiguous() for k, v in digits_state.items()})
    model = load_uploaded_model("model.safetensors", data, DIGITS)
    assert torch.equal(model.state_dict()["fc.weight"], digits_state["fc.weight"])


def test_wrappers_and_dataparallel_prefix_are_removed(digits_state):
    wrapped = {"state_dict": {f"module.{k}": v for k, v in digits_state.items()}, "epoch": 3}
    model = load_uploaded_model("checkpoint.pt", torch_bytes(wrapped), DIGITS)
    assert torch.equal(model.state_dict()["fc.bias"], digits_state["fc.bias"])


def test_random_bytes_are_refused():
    with pytest.raises(UploadError, match="not a readable PyTorch weights file"):
        load_uploaded_model("random.pth", os.urandom(4096), DIGITS)


def test_random_bytes_named_safetensors_are_refused():
    with pytest.raises(UploadError, match="not a valid safetensors file"):
        load_uploaded_model("random.safetensors", os.urandom(4096), DIGITS)


def test_a_truncated_file_is_refused(digits_state):
    data = torch_bytes(digits_state)
    with pytest.raises(UploadError, match="corrupt"):
        load_uploaded_model("model.pth", data[: len(data) // 2], DIGITS)


class Payload:
    """Something that is not a tensor; loading it would need arbitrary code."""


def test_a_pickle_of_objects_is_refused_without_running_it():
    data = torch_bytes({"model": Payload()})
    with pytest.raises(UploadError, match="Python objects other than tensors") as info:
        load_uploaded_model("model.pth", data, DIGITS)
    assert "weights_only" not in str(info.value)  # never torch's advice to load it unsafely


def test_a_plain_pickle_is_refused():
    with pytest.raises(UploadError, match="not a readable PyTorch weights file"):
        load_uploaded_model("model.pth", pickle.dumps([1, 2, 3]), DIGITS)


def test_a_pickle_that_is_not_a_state_dict_is_refused():
    with pytest.raises(UploadError, match="state dict"):
        load_uploaded_model("model.pth", torch_bytes({"epoch": 3, "note": "hello"}), DIGITS)


def test_a_wrong_architecture_names_missing_and_unexpected_keys():
    state = build_model("resnet18_cifar", 10).state_dict()
    with pytest.raises(UploadError) as info:
        load_uploaded_model("resnet.pth", torch_bytes(state), DIGITS)
    message = str(info.value)
    assert "missing keys" in message and "block1.0.weight" in message
    assert "unexpected keys" in message and "conv1.weight" in message
    assert "digits_cnn" in message


def test_a_wrong_number_of_classes_names_the_shapes(digits_state):
    state = build_model("digits_cnn", 7).state_dict()
    with pytest.raises(UploadError, match="shapes differ: fc.weight"):
        load_uploaded_model("seven.pth", torch_bytes(state), DIGITS)


def test_an_oversized_file_is_refused_before_reading():
    with pytest.raises(UploadError, match="more than the 1 MB"):
        read_state_dict("big.pth", b"\0" * (1024**2 + 1), max_bytes=1024**2)
    assert MAX_UPLOAD_BYTES >= 50 * 1024**2  # a CIFAR ResNet-18 state dict fits


def test_an_empty_file_is_refused():
    with pytest.raises(UploadError, match="empty"):
        read_state_dict("empty.pth", b"")


def test_nan_weights_are_refused(digits_state):
    state = {k: v.clone() for k, v in digits_state.items()}
    state["fc.weight"][0, 0] = float("nan")
    with pytest.raises(UploadError, match="NaN"):
        load_uploaded_model("nan.pth", torch_bytes(state), DIGITS)


def test_a_path_in_the_name_is_not_echoed():
    with pytest.raises(UploadError) as info:
        read_state_dict("../../etc/x.pth", b"junk")
    assert str(info.value).startswith("x.pth ")


def test_the_refusal_carries_the_informative_line_of_the_library_error():
    data = torch_bytes({"model": Payload()})
    with pytest.raises(UploadError) as info:
        read_state_dict("model.pth", data)
    message = str(info.value)
    assert "Payload" in message and "Weights only load failed" not in message and "\n" not in message


def test_an_imported_archive_names_one_missing_key_in_the_singular():
    from mucomp.models import build_model
    from mucomp.store import weights_problem

    tensors = build_model("digits_cnn", 10).state_dict()
    dropped = next(iter(tensors))
    tensors.pop(dropped)
    message = weights_problem("digits", tensors)
    assert f"(1 missing key: {dropped})" in message and "keys" not in message

"""Modyn's standard snippets are recognised in their spellings; nothing else is, and nothing is run."""

import pytest

from modyn_stream.pipeline import snippets


def parser(body: str, imports: str = "import torch\nimport numpy as np") -> str:
    return f"{imports}\ndef bytes_parser_function(data: memoryview):\n    {body}\n"


@pytest.mark.parametrize(
    ("source", "decoder"),
    [
        (parser('return Image.open(io.BytesIO(data)).convert("RGB")', "from PIL import Image\nimport io"),
         ("image", {"mode": "RGB"})),
        (parser("return Image.open(io.BytesIO(data)).convert('L')  # grey", "from PIL import Image\nimport io"),
         ("image", {"mode": "L"})),
        (parser("return PIL.Image.open(BytesIO(data))", "import PIL\nfrom io import BytesIO"),
         ("image", {"mode": None})),
        (parser("return torch.frombuffer(data, dtype=torch.float32).reshape(3, 32, 32)"),
         ("raw", {"dtype": "float32", "shape": [3, 32, 32]})),
        (parser("return torch.from_numpy(np.frombuffer(data, dtype=np.float32)).reshape((1, 32, 32))"),
         ("raw", {"dtype": "float32", "shape": [1, 32, 32]})),
        (parser("return numpy.frombuffer(data, numpy.float32)", "import numpy"), ("float32_vector", {})),
        (parser('return str(data, "utf8")', ""), ("text", {})),
        (parser("return bytes(data).decode('utf-8')", ""), ("text", {})),
        (parser("frame = pd.read_csv(BytesIO(data))\n    row = frame.to_numpy()[0]\n    return row.astype(np.float32)",
                "import pandas as pd\nimport numpy as np\nfrom io import BytesIO"), ("csv_row", {"header": True})),
        (parser("num = np.frombuffer(data[:52], dtype=np.float32)\n    cat = np.frombuffer(data[52:], dtype=np.int32)\n"
                "    return {'numerical_input': torch.asarray(num, copy=True, dtype=torch.float32),\n"
                "            'categorical_input': torch.asarray(cat, copy=True, dtype=torch.long)}"), ("criteo", {})),
    ],
)  # fmt: skip
def test_each_standard_parser_maps_to_its_decoder(source, decoder):
    assert snippets.bytes_parser(source) == decoder


def test_warnings_blocks_and_docstrings_are_ignored():
    source = parser(
        '"""decode"""\n    with warnings.catch_warnings():\n        warnings.simplefilter("ignore")\n'
        "    return torch.frombuffer(data, dtype=torch.float32)",
        "import warnings\nimport torch",
    )
    assert snippets.bytes_parser(source) == ("float32_vector", {})


@pytest.mark.parametrize(
    "source",
    [
        parser("return eval(data)"),
        parser("open('/etc/passwd').read()\n    return data"),
        parser("return torch.frombuffer(data, dtype=torch.int8)"),
        "def parse(data):\n    return str(data, 'utf8')\n",  # Modyn needs the name bytes_parser_function
        "def bytes_parser_function(data:\n",
    ],
)
def test_anything_else_is_refused_with_the_reason(source):
    with pytest.raises(snippets.SnippetError):
        snippets.bytes_parser(source)


def test_a_snippet_is_parsed_not_run(tmp_path):
    marker = tmp_path / "ran"
    source = f"def bytes_parser_function(data):\n    open({str(marker)!r}, 'w')\n    return data\n"
    with pytest.raises(snippets.SnippetError):
        snippets.bytes_parser(source)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("body", "name"),
    [("torch.argmax(model_output, dim=-1)", "argmax"), ("model_output.argmax(1)", "argmax"),
     ("torch.sigmoid(model_output)", "sigmoid"), ("torch.sigmoid(model_output).float()", "sigmoid"),
     ("torch.ge(torch.sigmoid(model_output).float(), 0.5)", "sigmoid_threshold"),
     ("torch.sigmoid(model_output) >= 0.5", "sigmoid_threshold")],
)  # fmt: skip
def test_evaluation_transformers(body, name):
    source = f"import torch\ndef evaluation_transformer_function(model_output):\n    return {body}\n"
    assert snippets.output_transformer(source) == name


@pytest.mark.parametrize(
    ("source", "spec"),
    [
        ("transforms.ToTensor()", {"name": "ToTensor"}),
        ("transforms.Normalize(mean=[0.5, 0.4], std=[0.2, 0.1])", {"name": "Normalize", "mean": [0.5, 0.4],
                                                                  "std": [0.2, 0.1]}),
        ("torchvision.transforms.Resize(256)", {"name": "Resize", "size": 256}),
        ("transforms.RandomResizedCrop(224, scale=(0.5, 1.0))", {"name": "RandomResizedCrop", "size": 224,
                                                                 "scale": [0.5, 1.0]}),
        ("transforms.RandomHorizontalFlip(p=0.3)", {"name": "RandomHorizontalFlip", "p": 0.3}),
    ],
)  # fmt: skip
def test_transformations_with_literal_arguments(source, spec):
    assert snippets.transformation(source) == spec


@pytest.mark.parametrize(
    ("source", "reason"),
    [("transforms.Normalize(mean=MEAN, std=[1])", "arguments must be literals"),
     ("os.system('x')", "is not a torchvision.transforms call"),
     ("transforms.Resize(1, 2, 3)", "Resize takes size here")],
)  # fmt: skip
def test_transformations_that_are_not_read(source, reason):
    with pytest.raises(snippets.SnippetError, match=reason):
        snippets.transformation(source)

"""ArticleNet and DistilBertTokenizerTransform from a Hugging Face cache the test writes (a tiny DistilBERT and its
own vocabulary), and the one line where the cache lacks them."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from modyn_stream.pipeline.loading import validate_data  # noqa: E402
from modyn_stream.pipeline.schema.data import DataSection  # noqa: E402
from modyn_stream.training.decoders import data_decoder  # noqa: E402
from modyn_stream.training.embeddings import forward_with_embeddings  # noqa: E402
from modyn_stream.training.exceptions import TrainingError  # noqa: E402
from modyn_stream.training.models import build_model, model_with_weights  # noqa: E402
from modyn_stream.training.text import HF_MODEL  # noqa: E402
from tests.pipeline.test_modyn_compat import modyn_format  # noqa: E402

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "##s", "a"]


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """A Hugging Face hub cache holding a 1-layer DistilBERT as distilbert-base-uncased, with VOCAB."""
    repo = tmp_path / "hub" / f"models--{HF_MODEL}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    torch.manual_seed(0)
    config = transformers.DistilBertConfig(vocab_size=len(VOCAB), dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                                           max_position_embeddings=320)  # fmt: skip
    transformers.DistilBertModel(config).save_pretrained(snapshot)
    (snapshot / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def text_data() -> DataSection:
    return DataSection(dataset_id="arxiv", decoder="text", tokenizer="DistilBertTokenizerTransform")


def test_the_tokenizer_gives_ids_and_attention_mask_padded_to_300_tokens(hf_cache):
    tokens = data_decoder(text_data())([b"Hello worlds", b"the"])
    assert tokens.shape == (2, 300, 2)
    assert tokens[0, :6, 0].tolist() == [2, 5, 6, 8, 3, 0], "[CLS] hello world ##s [SEP] [PAD]"
    assert tokens[0, :6, 1].tolist() == [1, 1, 1, 1, 1, 0] and tokens[1, :, 1].sum() == 3


def test_article_net_reads_its_weights_from_the_cache_trains_a_step_and_records_its_embedding(hf_cache):
    model = build_model("ArticleNet", {"num_classes": 3})
    cached = transformers.DistilBertModel.from_pretrained(HF_MODEL, local_files_only=True, cache_dir=str(hf_cache))
    assert all(torch.equal(a, b) for a, b in zip(model.featurizer.state_dict().values(), cached.state_dict().values(),
                                                 strict=True)), "the cache's weights"  # fmt: skip
    tokens = data_decoder(text_data())([b"hello world", b"a the the"])
    outputs, embedded = forward_with_embeddings(model, tokens)
    assert outputs.shape == (2, 3) and embedded.shape == (2, 16)
    assert torch.allclose(
        embedded, model.featurizer(input_ids=tokens[:, :, 0], attention_mask=tokens[:, :, 1])[0][:, 0]
    )
    torch.nn.functional.cross_entropy(outputs, torch.tensor([0, 2])).backward()
    assert model.classifier.weight.grad is not None and model.featurizer.embeddings.word_embeddings.weight.grad.any()
    rebuilt = model_with_weights("ArticleNet", {"num_classes": 3}, model.state_dict())
    assert torch.equal(rebuilt.eval()(tokens), model.eval()(tokens)), "a stored version loads as it was trained"


def test_without_the_cache_it_stops_with_one_line_and_validate_notes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(
        TrainingError,
        match=r"ArticleNet needs distilbert-base-uncased in the Hugging Face cache .*"
        r"empty, which does not have it .*hf download distilbert-base-uncased",
    ):
        build_model("ArticleNet", {"num_classes": 3})
    with pytest.raises(TrainingError, match="DistilBertTokenizerTransform needs distilbert-base-uncased"):
        data_decoder(text_data())
    data = modyn_format()
    data["model"] = {"id": "ArticleNet", "config": {"num_classes": 3}}
    data["training"]["optimizers"] = [{"name": "default", "algorithm": "SGD", "source": "PyTorch",
                                       "param_groups": [{"module": "model", "config": {"lr": 0.1}}]}]  # fmt: skip
    data["data"] |= {"bytes_parser_function": "def bytes_parser_function(data: bytes) -> str:\n"
                                              "    return str(data, 'utf8')\n",
                     "tokenizer": "DistilBertTokenizerTransform", "transformations": []}  # fmt: skip
    config, problems = validate_data(data)
    assert not problems and config.data.decoder == "text"
    from modyn_stream.pipeline.checks import weights_problems

    assert weights_problems(config)[0].startswith("model.id: ArticleNet needs distilbert-base-uncased")


@pytest.mark.parametrize(
    ("data", "problem"),
    [({"tokenizer": "GPT2Tokenizer"}, "data.tokenizer: unknown tokenizer 'GPT2Tokenizer'; known: DistilBert"),
     ({"tokenizer": "DistilBertTokenizerTransform", "decoder": "raw"},
      "data: tokenizer DistilBertTokenizerTransform reads UTF-8 text: it takes decoder text")],
)  # fmt: skip
def test_a_tokenizer_that_cannot_read_the_payload_is_refused_in_one_line(data, problem):
    config = modyn_format()
    config["data"] |= {**data, "transformations": []}
    config["data"].pop("bytes_parser_function", None)
    problems = validate_data(config)[1]
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_a_missing_tokenizer_does_not_hide_missing_torchvision_weights(tmp_path, monkeypatch):
    from modyn_stream.pipeline.checks import weights_problems

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    data = modyn_format()
    data["model"] = {"id": "ResNet18", "config": {"num_classes": 3, "use_pretrained": True}}
    data["training"]["optimizers"] = [{"name": "default", "algorithm": "SGD", "source": "PyTorch",
                                       "param_groups": [{"module": "model", "config": {"lr": 0.1}}]}]  # fmt: skip
    data["data"] |= {"decoder": "text", "tokenizer": "DistilBertTokenizerTransform", "transformations": []}
    data["data"].pop("bytes_parser_function", None)
    config, problems = validate_data(data)
    assert not problems
    found = weights_problems(config)
    assert [line.split(":")[0] for line in found] == ["data.tokenizer", "model.config.use_pretrained"], found

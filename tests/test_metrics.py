import math

import numpy as np
import pytest
import torch

from diffinv import metrics


def _images(seed=0):
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_identical_images():
    x = _images()
    assert metrics.psnr(x, x) == math.inf
    assert metrics.ssim(x, x) == pytest.approx(1.0)
    assert metrics.latent_mse(x, x) == 0.0


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.1])
def test_psnr_matches_the_known_noise_level(sigma):
    x = torch.full((1, 3, 64, 64), 0.5)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) * sigma
    assert metrics.psnr(x + noise, x) == pytest.approx(-10 * math.log10(sigma**2), abs=0.2)


def test_ssim_decreases_with_noise():
    x = _images()
    noisy = [x + torch.randn(x.shape, generator=torch.Generator().manual_seed(2)) * s for s in (0.02, 0.1, 0.3)]
    scores = [metrics.ssim(n.clamp(0, 1), x) for n in noisy]
    assert 1 > scores[0] > scores[1] > scores[2]


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        metrics.ssim(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))


def test_missing_weights_are_reported_not_invented(tmp_path):
    assert metrics.load_lpips(tmp_path).startswith("unavailable: ")
    assert metrics.load_clip(tmp_path / "no-clip").startswith("unavailable: ")


def _alexnet_weights(folder, seed=0):
    """A random AlexNet saved as torchvision saves it (``features.*`` and ``classifier.*`` keys)."""
    torch.manual_seed(seed)
    features = metrics.LPIPSAlex().features.state_dict()
    state = {f"features.{k}": v for k, v in features.items()} | {"classifier.1.weight": torch.randn(8, 9216)}
    torch.save(state, folder / metrics.ALEXNET_WEIGHTS)


def test_lpips_with_alexnet_weights_on_disk(tmp_path):
    _alexnet_weights(tmp_path)
    lpips = metrics.load_lpips(tmp_path)
    assert callable(lpips), lpips
    x = _images(0)[:1].expand(2, -1, -1, -1).clone()
    x[1] = _images(5)[0]
    noisy = [
        (x + torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) * s).clamp(0, 1) for s in (0.05, 0.2)
    ]
    assert lpips(x, x) == 0.0
    assert 0 < lpips(noisy[0], x) < lpips(noisy[1], x)
    assert lpips(noisy[1], x) == pytest.approx(lpips(x, noisy[1]), rel=1e-5)  # symmetric
    single = [lpips(noisy[1][i : i + 1], x[i : i + 1]) for i in range(2)]
    assert lpips(noisy[1], x) == pytest.approx(sum(single) / 2, rel=1e-5)  # the batch mean of per-image scores
    _alexnet_weights(tmp_path, seed=1)  # other backbone weights: other distances (the file is really read)
    assert metrics.load_lpips(tmp_path)(noisy[1], x) != pytest.approx(lpips(noisy[1], x), rel=1e-3)


def test_lpips_refuses_a_file_that_is_not_alexnet_weights(tmp_path):
    torch.save({"features.0.weight": torch.zeros(2, 2)}, tmp_path / metrics.ALEXNET_WEIGHTS)
    assert metrics.load_lpips(tmp_path).startswith("unavailable: ")
    torch.save({"weights": object()}, tmp_path / metrics.ALEXNET_WEIGHTS)  # a pickle of code objects: refused
    assert metrics.load_lpips(tmp_path).startswith("unavailable: ")


def test_clip_scores_with_a_local_model(tmp_path):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from diffinv.testing import clip_tokenizer

    tokenizer = clip_tokenizer()
    config = CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "vocab_size": len(tokenizer),
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(tmp_path)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(tmp_path)
    scorer = metrics.load_clip(tmp_path)
    assert not isinstance(scorer, str), scorer
    x = _images()
    assert scorer.clip_i(x, x) == pytest.approx(1.0, abs=1e-5)
    assert scorer.clip_i(x, _images(seed=5)) < 1.0
    assert -1.0 <= scorer.clip_t(x[:1], ["a photo"]) <= 1.0


def test_feature_distances_on_probe_features_grow_with_the_difference(tmp_path) -> None:
    from diffinv.metrics import feature_distances, load_inception
    from diffinv.shapes import dataset, render
    from diffinv.shapes.probe import ProbeFeatures, default_probe
    from diffinv.train.augment import gaussian_blur

    def pixels(scenes) -> torch.Tensor:
        return torch.from_numpy(np.stack([render(s, 64) for s in scenes])).permute(0, 3, 1, 2).float() / 255

    features = ProbeFeatures(default_probe())
    real = pixels(dataset("test", 100, seed=0))
    other_renders = pixels(dataset("test", 100, seed=1))
    same = feature_distances(other_renders, real, features)
    blurred = [gaussian_blur(other_renders, torch.full((100,), sigma)) for sigma in (1.0, 2.0)]
    mild, strong = (feature_distances(b, real, features) for b in blurred)
    assert same["fid"] < mild["fid"] < strong["fid"] and same["kid"] < mild["kid"] < strong["kid"]
    assert abs(same["kid"]) < mild["kid"] / 5
    assert feature_distances(other_renders, real, features) == same  # deterministic
    assert features(real[:2]).shape == (2, features.num_features)
    with pytest.raises(ValueError, match="references must be"):
        feature_distances(real, real[:1], features)
    assert load_inception(None).startswith("unavailable:")
    (tmp_path / "w.pth").write_bytes(b"not weights")
    assert load_inception(tmp_path / "w.pth").startswith("unavailable:")

"""benchmarks/gpu.py without a GPU: everything in it that does not need CUDA (the device is never touched here)."""

from __future__ import annotations

import pytest
import torch

from conftest import load_benchmark


@pytest.fixture(scope="module")
def gpu():
    return load_benchmark("gpu")


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L4", 121.0),
        ("Tesla T4", None),  # no bf16 tensor cores: unknown, MFU n/a
    ],
)
def test_peak_lookup(gpu, name, peak):
    assert gpu.peak_bf16_tflops(name) == peak


def test_mfu_and_scaling_arithmetic(gpu):
    assert gpu.mfu(2e12, 0.02, 200.0) == pytest.approx(0.5)  # 1e14 FLOP/s of 2e14
    assert gpu.mfu(2e12, 0.02, 200.0, devices=4) == pytest.approx(0.5)  # per device the same
    assert gpu.scaling_efficiency(100.0, 360.0, 4) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="positive"):
        gpu.mfu(1e12, 0.0, 100.0)


def test_flop_count_of_a_step(gpu):
    size = gpu.TINY
    batch = gpu.make_batch(2, size)
    torch.manual_seed(0)
    plain = gpu.count_flops(gpu.build("plain", size), batch)
    aet = gpu.count_flops(gpu.build("aet", size, queue_size=64), batch)
    # lower bound: the fusion encoder's linear layers alone, forward + backward (3 x 2 FLOPs per multiply-add)
    tokens = 2 * (size["length"] + (size["image"] // size["patch"]) ** 2 + 1)
    h, f = size["hidden"], size["ffn"]
    assert plain >= 6 * tokens * size["layers"] * (4 * h * h + 2 * h * f)
    assert aet > plain  # two more encoders, their momentum copies' forwards, the losses


@pytest.mark.parametrize("system", ["plain", "aet"])
def test_compare_losses_cpu_vs_cpu(gpu, system):
    size = gpu.TINY

    def factory():
        torch.manual_seed(0)
        return gpu.build(system, size, queue_size=64)

    found = gpu.compare_losses(factory, gpu.make_batch(2, size, seed=1), "cpu", "cpu", rtol=1e-6)
    assert found["ok"] and found["max_rel"] < 1e-6
    assert "total" in found["a"] and set(found["a"]) == set(found["b"])
    if system == "aet":
        assert {"loss_ditc", "loss_imc", "loss_glitc", "loss_pita"} <= set(found["a"])
    assert all(abs(v) < float("inf") for v in found["a"].values())  # finite numbers


def test_report_and_section(gpu, tmp_path):
    runs = [
        dict(
            system="plain",
            precision="bf16-mixed",
            devices=1,
            seconds_per_step=0.1,
            samples_per_s=80.0,
            cuda_peak_gib=10.0,
            flops_per_step=4e13,
            params_m=126.0,
        ),
        dict(
            system="aet",
            precision="bf16-mixed",
            devices=1,
            seconds_per_step=0.2,
            samples_per_s=40.0,
            cuda_peak_gib=20.0,
            flops_per_step=1e14,
            params_m=550.0,
        ),
        dict(
            system="plain",
            precision="32-true",
            devices=1,
            seconds_per_step=0.3,
            samples_per_s=26.7,
            cuda_peak_gib=15.0,
            flops_per_step=None,
            params_m=126.0,
        ),
        dict(
            system="plain",
            precision="bf16-mixed",
            devices=2,
            seconds_per_step=0.11,
            samples_per_s=144.0,
            cuda_peak_gib=10.0,
            flops_per_step=None,
            params_m=126.0,
        ),
    ]
    compare = {
        "plain": dict(
            a={"loss_task": 4.1, "total": 4.1},
            b={"loss_task": 4.1000001, "total": 4.1000001},
            max_rel=2.4e-8,
            ok=True,
            rtol=1e-4,
        )
    }
    meta = dict(
        command="python benchmarks/gpu.py",
        machine="test",
        batch=8,
        steps=10,
        warmup=3,
        peak_source="table",
        skipped=["aet 32-true on 1 GPU(s)"],
    )
    body = gpu.report(runs, compare, 400.0, meta)
    assert "| plain | bf16-mixed | 1 | 0.100 | 80.0 | 400.0 | 100.0% |" in body  # 4e13 / 0.1 s = 400 TFLOPS
    assert "| aet | bf16-mixed | 1 | 0.200 | 40.0 | 500.0 | 125.0% | 20.0 | 2.00 |" in body
    assert "bf16-mixed over strict fp32 (step time): plain 3.00x" in body
    assert "on 2 GPUs: scaling efficiency 90%" in body
    assert "plain: agree" in body and "Skipped (time budget): aet 32-true" in body
    target = tmp_path / "RESULTS.md"
    gpu.results.write_section("gpu", gpu.TITLE, body, path=target)
    gpu.results.write_section("gpu", gpu.TITLE, body, path=target)  # replaced, not appended
    text = target.read_text()
    assert text.count("<!-- section: gpu -->") == 1 and "## GPU check" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_refuses_without_cuda(gpu, tmp_path):
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        gpu.main(["--no-write"])

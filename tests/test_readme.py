"""The README's "Ten lines" example runs and prints the exponent of its own activations."""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _ten_lines() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Ten lines", 1)
    assert len(section) == 2, "README.md has no '## Ten lines' section"
    match = re.search(r"```python\n(.*?)```", section[1], flags=re.DOTALL)
    assert match, "the '## Ten lines' section has no python block"
    return match.group(1)


def _patched(code: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        # A README edit that removes a patched phrase must fail here, not run the slow original.
        assert code.count(old) == 1, f"{old!r} is no longer in the README example"
        code = code.replace(old, new)
    return code


def test_ten_lines_prints_alpha_of_the_recorded_layer(capsys):
    code = _patched(
        _ten_lines(),
        {
            # Fast: 2 bootstraps instead of 200 on a 1500-image subset, no progress bar.
            "n_bootstraps=200": "n_bootstraps=2",
            "X, y = load_mnist5k()": "X, y = load_mnist5k()\nX, y = X[:1500], y[:1500]\ntorch.manual_seed(0)",
            'labels=y)': "labels=y, progress=False)",
            "progress=True)": "progress=False)",
        },
    )
    namespace: dict = {"__name__": "readme_ten_lines"}
    exec(compile(code, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    printed = re.fullmatch(
        r"alpha = (-?\d+\.\d{3}), 95% CI \((.+), (.+)\), r2 = (\d\.\d{3})\n", out
    )
    assert printed, out
    spec, acts = namespace["spec"], namespace["acts"]
    # Brute force: numpy eigenvalues of the recorded ReLU layer's covariance, and a 1/n-weighted
    # log-log line over the ranks the estimator fitted.
    relu = acts["1"].values.astype(np.float64)
    assert relu.shape == (1500, 1000) and relu.min() >= 0.0
    lam = np.sort(np.linalg.eigvalsh(np.cov(relu, rowvar=False)))[::-1]
    lo, hi = spec.fit_range_
    ranks = np.arange(lo, hi + 1, dtype=np.float64)
    slope, _ = np.polyfit(np.log(ranks), np.log(lam[lo - 1 : hi]), 1, w=np.sqrt(1.0 / ranks))
    assert spec.alpha_ == pytest.approx(-slope, rel=1e-6)
    # what it prints is the bias-corrected exponent, the centre of the interval it prints beside it
    assert float(printed.group(1)) == pytest.approx(spec.alpha_corrected_, abs=0.0005 + 1e-9)
    lo_ci, hi_ci = float(printed.group(2)), float(printed.group(3))
    assert np.isfinite([lo_ci, hi_ci]).all() and lo_ci < hi_ci
    assert lo_ci - 0.0005 <= float(printed.group(1)) <= hi_ci + 0.0005

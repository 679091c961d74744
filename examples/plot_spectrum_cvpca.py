"""
Power-law spectra and cross-validated PCA of recorded responses
===============================================================

Stringer et al. (2019, *Nature* 571:361) found that the variance of visual
cortex responses along the n-th principal component decays as a power law,
``lambda_n ~ n ** -alpha`` with ``alpha`` just above 1, and showed that a code
whose spectrum decays slower than ``n ** -(1 + 2/d)`` for a d-dimensional
stimulus set cannot be smooth.

Real recordings are noisy: every trial adds noise, which spreads variance over
all the principal components and flattens the tail of the spectrum. Their
cross-validated PCA (cvPCA) needs two repeats of every stimulus: principal axes
from repeat 1, and the covariance *between* the repeats along those axes, in
which trial noise (independent across repeats) cancels.

Here we simulate a recording whose true spectrum we know
(:func:`geomkit.datasets.make_powerlaw_data`), and compare plain PCA and cvPCA
with :class:`geomkit.PowerLawSpectrum`: the exponent, the noise spectrum, a
bootstrap confidence interval, and an out-of-sample exponent from
scikit-learn's ``cross_val_score``.
"""

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import cross_val_score

from geomkit.datasets import make_powerlaw_data
from geomkit.measures.spectrum import PowerLawSpectrum, SpectrumWarning, smoothness_threshold
from geomkit.plotting import plot_spectrum

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"
N_STIMULI, N_UNITS = (1500, 200) if SMALL else (3000, 400)
ALPHA, NOISE = 1.0, 0.1

# %%
# A simulated recording with two repeats
# --------------------------------------
# Every unit's response to a stimulus is a signal shared by both repeats plus
# independent Gaussian trial noise of standard deviation 0.1. The signal's
# population spectrum is exactly ``n ** -1``; the noise adds 0.1² = 0.01 to every
# eigenvalue, which is more than the signal from rank 100 on.
X, true_lambda = make_powerlaw_data(N_STIMULI, N_UNITS, alpha=ALPHA, noise=NOISE, n_repeats=2,
                                    random_state=1)
print(f"responses: {X.shape} = (repeats, stimuli, units)")

# %%
# Plain PCA against cvPCA
# -----------------------
# Plain PCA of one repeat sees signal plus noise. cvPCA (``method="cvpca"``)
# takes both repeats, as an array of shape (2, stimuli, units), and averages
# ``n_shuffles`` random swaps of the repeats for half of the stimuli. Both fit
# ``log lambda_n = -alpha log n + b`` by least squares weighted by ``1/n`` over
# ranks 11..500, clipped (with a :class:`SpectrumWarning`, silenced here) to
# half the usable eigenvalues.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", SpectrumWarning)
    pca = PowerLawSpectrum().fit(X[0])
    cv = PowerLawSpectrum(method="cvpca", n_shuffles=5, random_state=0).fit(X)

print(f"true alpha            {ALPHA:.3f}")
print(f"plain PCA, repeat 1   {pca.alpha_:.3f}  (error {pca.alpha_ - ALPHA:+.3f}), "
      f"ranks {pca.fit_range_}")
print(f"cvPCA, both repeats   {cv.alpha_:.3f}  (error {cv.alpha_ - ALPHA:+.3f}), "
      f"ranks {cv.fit_range_}")

# %%
# The noise spectrum
# ------------------
# cvPCA also reports the spectrum of the trial noise,
# ``Cov((X1 - X2) / sqrt(2))``: here isotropic noise of variance 0.01 per unit,
# spread by sampling into a Marchenko-Pastur band around 0.01.
noise = cv.noise_eigenvalues_
print(f"noise eigenvalues: mean {noise.mean():.4f} (true {NOISE ** 2:.4f}), "
      f"largest {noise[0]:.4f}, smallest {noise[-1]:.4f}")

# %%
# The figure shows both spectra with their fitted lines over the shaded fit
# ranges. Plain PCA's tail flattens where it meets the noise floor; the cvPCA
# signal follows the true spectrum (grey) until the estimate becomes noisy
# (non-positive values are not drawn on log axes).
fig, ax = plt.subplots(figsize=(7, 5))
ranks = np.arange(1, true_lambda.size + 1)
ax.plot(ranks, true_lambda, color="0.6", linewidth=4, alpha=0.5, label="true spectrum $n^{-1}$")
plot_spectrum(pca, ax=ax, label="PCA, one repeat", show_noise=False)
plot_spectrum(cv, ax=ax, label="cvPCA")
ax.set_title("Trial noise flattens the PCA spectrum; cvPCA removes it")
fig.tight_layout()

# %%
# A bootstrap confidence interval
# -------------------------------
# With ``n_bootstraps`` the stimuli are resampled with replacement and the whole
# estimate (for cvPCA, the shuffles too) repeated. ``alpha_corrected_`` removes
# the estimator's finite-sample bias, found by fitting data simulated from the
# fitted law (resampling stimuli cannot see that bias), and ``alpha_ci_`` is
# ``alpha_corrected_ +- z * se``, ``se`` from the spread of the bootstrap
# exponents. Report the corrected value with its interval; ``alpha_`` is the
# plug-in estimate, ``alpha_bias_ = alpha_ - alpha_corrected_``.
#
# Only the bootstrap's *spread* is used: resampling with replacement duplicates
# stimuli, which shifts the bootstrap exponents themselves (here upward), so
# their histogram need not sit on the estimate.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", SpectrumWarning)
    boot = PowerLawSpectrum(method="cvpca", n_shuffles=2, n_bootstraps=8 if SMALL else 40,
                            random_state=0).fit(X)
lo, hi = boot.alpha_ci_
print(f"cvPCA alpha {boot.alpha_corrected_:.3f} (bias-corrected; plug-in {boot.alpha_:.3f}), "
      f"95 % CI [{lo:.3f}, {hi:.3f}] from {boot.alpha_bootstrap_.size} bootstraps "
      f"(covers the true {ALPHA}: {lo <= ALPHA <= hi})")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.hist(boot.alpha_bootstrap_, bins=10, color="C1", alpha=0.7, label="bootstrap exponents")
ax.axvline(boot.alpha_, color="C1", linestyle="--", label=f"plug-in α {boot.alpha_:.3f}")
ax.axvline(boot.alpha_corrected_, color="C0", label=f"bias-corrected α {boot.alpha_corrected_:.3f}")
ax.axvspan(lo, hi, color="C0", alpha=0.15, label="95 % CI (bias-corrected)")
ax.axvline(ALPHA, color="black", label="true α")
ax.set_xlabel("power-law exponent α (cvPCA)")
ax.set_ylabel("bootstrap resamples")
ax.legend(fontsize="small", frameon=False)
fig.tight_layout()

# %%
# Out-of-sample exponents with ``cross_val_score``
# ------------------------------------------------
# ``score(X)`` fits the exponent of *new* responses' variance along the
# principal axes learnt in ``fit``: a spectrum cross-validated across stimuli,
# which is not inflated by fitting the axes to the same data. For cvPCA the
# second repeat is passed as ``y``, so that both repeats are split by stimulus.
# The score is an exponent, not a goodness: do not maximize it.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", SpectrumWarning)
    held_out = cross_val_score(
        PowerLawSpectrum(method="cvpca", n_shuffles=2, fit_range=(5, 50), random_state=0),
        X[0], X[1], cv=3,
    )
print("held-out cvPCA exponents per fold:", np.round(held_out, 3))

# %%
# Is the code smooth?
# -------------------
# :func:`~geomkit.measures.spectrum.smoothness_threshold` gives Stringer et al.'s
# critical exponent ``1 + 2/d`` for a d-dimensional stimulus set: a spectrum
# decaying slower than that cannot come from a smooth (differentiable) code. Our
# ``alpha = 1`` is at the limit of a high-dimensional stimulus set, as in
# cortex for natural images, and too slow for any low-dimensional one.
for d in (1, 2, 4, 8, 32):
    threshold = smoothness_threshold(d)
    verdict = "smooth" if cv.alpha_ > threshold else "too slow for a smooth code"
    print(f"d = {d:2d}: threshold {threshold:.3f} -> alpha {cv.alpha_:.3f} is {verdict}")

# %%
# The fitted spectrum as data
# ---------------------------
# ``to_xarray`` returns the eigenvalues, the fitted line and the noise spectrum
# over the coordinate ``rank``, with the fit in the attributes; it saves to
# netCDF without loss.
ds = cv.to_xarray()
print(ds)

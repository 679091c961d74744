"""CF-style ``long_name`` and ``units`` of every variable in a study's results.nc.

One table, so that a reader of the netCDF file (ncdump, Panoply, xarray) sees what each number
is and in which units, and a test keeps the table complete: a new variable without an entry
fails it. Dimensionless quantities have ``units = "1"`` (CF convention); text variables have
``units = ""``.
"""

from __future__ import annotations

from typing import Any

# name -> (long_name, units)
VARIABLES: dict[str, tuple[str, str]] = {
    "alpha": ("power-law exponent of the activation spectrum, bias-corrected", "1"),
    "alpha_ci_low": ("lower bound of the bootstrap interval of alpha", "1"),
    "alpha_ci_high": ("upper bound of the bootstrap interval of alpha", "1"),
    "alpha_plugin": ("power-law exponent of the activation spectrum, plug-in (not bias-corrected)", "1"),
    "alpha_r2": ("r^2 of the power-law fit in log-log space", "1"),
    "fit_rank_low": ("first rank of the power-law fit", "1"),
    "fit_rank_high": ("last rank of the power-law fit", "1"),
    "eigenvalues": ("covariance eigenvalue of the layer's activations, by rank", "activation^2"),
    "categoricality": ("categoricality index (KS statistic of within vs between distances), bias-corrected", "1"),
    "categoricality_ci_low": ("lower bound of the bootstrap interval of the categoricality index", "1"),
    "categoricality_ci_high": ("upper bound of the bootstrap interval of the categoricality index", "1"),
    "categoricality_plugin": ("categoricality index, plug-in (not bias-corrected)", "1"),
    "selective_fraction": ("fraction of units selective for one class (d' above threshold)", "1"),
    "jacobian_fro2": ("mean squared Frobenius norm of the input-layer Jacobian", "activation^2 / pixel^2"),
    "weight_alpha": ("power-law exponent of the weight spectrum's tail (density)", "1"),
    "weight_kurtosis": ("excess kurtosis of the layer's weights", "1"),
    "weight_l1_l2": ("l1 / l2 norm ratio of the layer's weights, divided by sqrt(n)", "1"),
    "weight_stable_rank": ("stable rank of the weight matrix, sum(lambda) / lambda_max", "1"),
    "n_peaks": ("mean number of peaks of the units' tuning maps", "1"),
    "betti0": ("mean Betti-0 count of the superlevel sets of the tuning maps", "1"),
    "betti1": ("mean Betti-1 count of the superlevel sets of the tuning maps", "1"),
    "accuracy": ("test accuracy on the held-out images", "1"),
    "fisher_log_trace": ("mean natural log of the trace of the input-space Fisher information", "1"),
    "pgd_auc": ("PGD score: area under robust accuracy against log eps, normalized", "1"),
    "worst_auc": ("worst-case area under robust accuracy over all attacks, normalized", "1"),
    "critical_eps_median": ("median smallest perturbation that flips the prediction", "pixel"),
    "saturation_fraction": ("fraction of hidden pre-activations in the flat part of the nonlinearity", "1"),
    "v1_cka": ("linear CKA of the hidden layer with a Gabor V1 model's responses to the held-out images", "1"),
    "worst_attack": ("attack with the lowest robust accuracy", ""),
    "robust_accuracy": ("accuracy under attack, among the inputs correct without attack", "1"),
    "diagnostic": ("gradient-masking diagnostic verdict", ""),
    "caa_robust_accuracy": ("accuracy under the composite semantic attack (CAA) in an attack order, "
                            "among the inputs correct without attack", "1"),
    "hidden_cka": ("debiased linear CKA between the models' hidden layers, bootstrap-bias-corrected", "1"),
    "hidden_cka_plugin": ("debiased linear CKA between the models' hidden layers, plug-in (not "
                          "bootstrap-corrected)", "1"),
    "hidden_cka_ci_low": ("lower bound of the bootstrap interval of hidden_cka", "1"),
    "hidden_cka_ci_high": ("upper bound of the bootstrap interval of hidden_cka", "1"),
    "attribution_topk": ("top-k intersection of saliency maps before and after the perturbation", "1"),
    "attribution_spearman": ("Spearman rank correlation of saliency maps before and after the perturbation", "1"),
    "attribution_com_shift": ("distance the saliency map's centre of mass moves under the perturbation, in pixels", "pixel"),
}
COORDINATES: dict[str, tuple[str, str]] = {
    "eps": ("perturbation size (L-inf or L2 norm, in pixel intensities in [0, 1])", "pixel"),
    "rank": ("rank of the eigenvalue (1 = largest)", "1"),
    "level": ("superlevel-set threshold of the tuning maps", "activation"),
    "level_fraction": ("superlevel-set threshold as a fraction of each map's range", "1"),
    "seed": ("training seed", "1"),
    "attribution_eps": ("L-inf radius of the perturbation of the saliency maps (pixel intensities in [0, 1])",
                        "pixel"),
}


def annotate(ds: Any) -> Any:
    """Set ``long_name`` and ``units`` on every variable and numeric coordinate ``ds`` has.

    Parameters
    ----------
    ds : xarray.Dataset
        A study's results.

    Returns
    -------
    xarray.Dataset
        The same Dataset (attributes set in place).
    """
    for table in (VARIABLES, COORDINATES):
        for name, (long_name, units) in table.items():
            if name in ds.variables:
                ds[name].attrs.update(long_name=long_name, units=units)
    return ds

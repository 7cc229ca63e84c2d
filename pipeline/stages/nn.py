"""Neural-net cleaning of the DBSCAN-kept sample (paper §2.5): the Python model ``cln_nn_folds``.

``nn_clean(X, Y, ids, cfg, seed, ivar=None) -> NNResult`` takes the recalibrated red-grid
spectra (``spc_red_grid``: 6000-8800 AA, 1,657 px, divided by the §2.3.2 polynomial) of the
stars that survived DBSCAN and inspection (``cln_kept``) and their Teff / log g / [M/H] labels,
and removes the stars whose labels a network trained on the *other* stars cannot reproduce.
The model ``cln_nn_folds`` (``NN_FOLDS_COLUMNS``, ``NNResult.fold_table``) stores one row per
(iteration, fold): the fit record and the fold's held-out stars as list columns; the SQL models
``cln_nn_predictions`` (one row per iteration and star, ``PREDICTION_COLUMNS``: unnested) and
``cln_nn_kept`` (the survivors) read it. ``nn_summary`` gives the figures beside the paper's.
The seed is ``nn.seed``.

Inputs (``nn_inputs``)
----------------------
A pixel is good when its flux is finite and, if ``ivar`` is given, its ivar is finite and > 0
(the warehouse convention: ivar <= 0 marks a bad pixel). Each spectrum is divided by the
median of its good pixels, so the net sees shapes, not flux levels (the recalibrated flux
still carries the model SED's arbitrary scale). A spectrum with fewer than
``nn.min_good_pix_frac`` good pixels, or a non-positive median, never enters (reason
``few_good_pixels`` / ``nonpositive_median``); so does a star with a non-finite label
(``nan_label``). Neither is an error: they are flagged rows of the per-star table.
Inside each fold, a masked pixel is replaced by the median of that pixel over the fold's
training stars (so the value carries no information the net could key on, and no
test-star information leaks into training), and every pixel is then standardised with the
training stars' mean and standard deviation (a constant pixel, std 0, becomes 0). The
count of masked pixels per star is kept (``n_masked_pix``). Labels are standardised per
parameter with the training stars' mean / std, so the three outputs weigh alike in the
squared-error loss; predictions are transformed back to K and dex.

Architecture: what "5-layer" means
----------------------------------
The paper calls its network "5-layer ... an input layer, three hidden layers, and an output
layer", yet lists only the sizes 1657 -> 512 -> 64 -> 3. We read it as the sequence of
weight layers and activations a Keras/PyTorch user writes down: input (1,657), dense 512,
dense 64, output 3, i.e. two hidden layers of neurons; the count of five most likely
includes an activation or the layer "512 -> 64" counted as a hidden layer of its own (the
text says "the spectral features were reduced from 1657 to 512, 512 to 64, then the 64
features were mapped to the output layer": three mappings, hence "three hidden layers").
A third hidden width is never given, so none is invented: ``nn.hidden_layers = (512, 64)``
-> scikit-learn ``MLPRegressor(hidden_layer_sizes=(512, 64))``, ReLU, adam, L2 ``nn.alpha``.

Held-out predictions and iteration
----------------------------------
The paper split once at random into a training and a testing set, so only the testing
stars could be judged. Here each iteration deals the current stars into ``nn.k_folds``
folds (a seeded permutation of the stars in id order) and trains one network per fold on
the other folds, so every star gets exactly one held-out prediction per iteration.
A star is removed when any |held-out prediction - label| exceeds ``nn.max_dteff_k`` /
``nn.max_dlogg_dex`` / ``nn.max_dmh_dex`` (100 K / 0.2 / 0.2 dex, §2.5) and also
``nn.limit_nsigma`` (4) robust sigmas (1.4826 MAD) of that iteration's held-out residuals of
that parameter (``removal_limits``; 0 = the paper's fixed limits alone). The paper's rule
presumes a net far more precise than its limits (it reached 14 K / 0.06 / 0.05 dex); a net that
is not (few stars, as on ``demo``: 330 synthetic stars gave 50 K / 0.09 / 0.10 dex) removes
clean stars by its own scatter, retrains on fewer and removes more: 316 of 328 clean stars in
three iterations with the fixed limits. With the guard a residual must also be atypical of the
net's own precision; at the paper's precision it changes only log g (4 x 0.06 = 0.24 > 0.2).
The limits applied are kept per iteration (``NNResult.limits``, ``limit_*`` in
``cln_nn_folds``), and ``nn_summary`` says which parameters the net's scatter limited. The survivors
are dealt again and retrained, up to ``nn.max_iterations`` (5) times, stopping as soon as
an iteration removes nobody (``converged``). An iteration left with fewer stars than K folds can train on
(``min_stars_for``: every fold's training set must hold back at least two early-stopping
validation stars, sklearn's minimum; 14 stars at K = 5 and a 10 % validation share) stops
the loop instead (``stop_reason``); the first refuses with a one-line ValueError.

Early stopping instead of 10,000 fits
-------------------------------------
"We did 10,000 fits for each training" is read as 10,000 epochs of a fixed schedule. Here
each fold network holds back ``nn.validation_fraction`` of its training stars and stops
when their R^2 has not improved by ``nn.tol`` for ``nn.n_iter_no_change`` epochs (at most
``nn.max_epochs``), keeping the weights of the best epoch: the guard against overfitting
that Fig. 7 argues from the loss curve is applied, not only shown. Every fold's training
loss curve and validation R^2 curve are kept (``cln_nn_folds``: Fig. 7), and every held-out
prediction (``cln_nn_predictions``: Fig. 8).

Determinism
-----------
Fold deals and each fold network's ``random_state`` (weights, minibatch order, validation
split) derive from ``seed`` through ``numpy.random.SeedSequence([seed, iteration, fold])``;
stars are processed in id order, so the input row order does not matter either. OpenBLAS
GEMM results depend on the thread count, so training runs under
``threadpoolctl.threadpool_limits(nn.blas_threads)``: the same inputs, seed and config give
bit-identical predictions in one process, across processes and on machines with other core
counts (a CPU of another architecture may pick another OpenBLAS kernel).

Cost (measured on the shared 2-core machine under a load of ~4.5 from other sessions; 1 BLAS
thread, float32 inputs, which halve the cost against float64; synthetic M dwarfs and giants from
``synth.spectra_model.intrinsic_flux`` on the 1,664-px red grid, S/N ~40, label noise 20 K /
0.04 / 0.04 dex, 0.5 % label outliers): one epoch of a (512, 64) net on 3,600 stars costs
0.6 s alone, 0.9-1.7 s under that load, and early stopping ends a fit after 36-86 epochs.
``nn_clean`` with the defaults: 330 stars (``demo`` size) 126 s, 5,000 stars 1,045 s, both
running all 5 iterations (25 fold fits). At 5,000 stars the held-out scatter was 29 K / 0.11 /
0.063 dex (robust sigma), all 25 outliers and 2.7 % of the clean stars removed; at 330 the net
reaches only 71 K / 0.43 / 0.13 dex (264 training stars for 1,657 x 512 weights), so
``limited_by_scatter`` names all three parameters there and the step is a weak check.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from ..config import Config
from ..pymodel import python_model

LABELS = ("teff_k", "logg_dex", "mh_dex")
PRED_NAMES = ("teff_pred_k", "logg_pred_dex", "mh_pred_dex")
RESID_NAMES = ("dteff_k", "dlogg_dex", "dmh_dex")   # held-out prediction - label
LIMIT_KEYS = ("nn.max_dteff_k", "nn.max_dlogg_dex", "nn.max_dmh_dex")

# why a star left (NULL while it stays)
REASON_RESIDUAL = "nn_residual"
REASON_FEW_PIXELS = "few_good_pixels"
REASON_NONPOSITIVE = "nonpositive_median"
REASON_NAN_LABEL = "nan_label"
REASON_TOO_FEW = "too_few_for_nn"     # kept unjudged: fewer usable stars than K folds can train on (not removed)


class TooFewStars(ValueError):
    """Fewer usable stars than the folds can train on; carries what ``nn_clean`` knew of each star."""

    def __init__(self, message: str, ids: np.ndarray, labels: np.ndarray, excluded: np.ndarray,
                 n_masked: np.ndarray):
        super().__init__(message)
        self.ids, self.labels, self.excluded, self.n_masked = ids, labels, excluded, n_masked

    def pass_through(self) -> pa.Table:
        """The cln_nn_folds row of a sample the NN cannot judge: every usable star kept, unjudged (reason
        ``REASON_TOO_FEW``, not removed), the others excluded as usual."""
        reasons = np.where(self.excluded == None, REASON_TOO_FEW, self.excluded)  # noqa: E711 (object array)
        res = NNResult(ids=self.ids, labels=self.labels, n_masked_pix=self.n_masked, excluded=reasons,
                       row_iteration=np.empty(0, np.int32), row_star=np.empty(0, np.int64),
                       row_fold=np.empty(0, np.int32), row_pred=np.empty((0, 3)), row_resid=np.empty((0, 3)),
                       row_removed=np.empty(0, bool), folds=(), base_limits=np.zeros(3), limits=np.empty((0, 3)),
                       converged=False, stop_reason="too_few_stars")
        t = res.fold_table()
        removed = pa.array([[r != REASON_TOO_FEW for r in row] for row in t["reason"].to_pylist()],
                           pa.list_(pa.bool_()))
        return t.set_column(t.column_names.index("removed"), "removed", removed)

# the paper's figures (§2.5) that nn_summary reports beside
PAPER = {"scatter": {"teff_k": 14.0, "logg_dex": 0.06, "mh_dex": 0.05}, "n_removed": 27, "n_input": 5132}

# DuckDB types of the two tables of NNResult.to_tables(), for the model declarations
PREDICTION_COLUMNS = {
    "obsid": "bigint", "iteration": "integer", "fold": "integer",
    **{c: "double" for c in LABELS}, **{c: "double" for c in PRED_NAMES}, **{c: "double" for c in RESID_NAMES},
    "removed": "boolean", "reason": "varchar", "n_masked_pix": "integer",
}
FOLD_COLUMNS = {
    "iteration": "integer", "fold": "integer", "n_train": "integer", "n_test": "integer",
    "random_state": "bigint", "n_epochs": "integer", "stopped_early": "boolean",
    "limit_dteff_k": "double", "limit_dlogg_dex": "double", "limit_dmh_dex": "double",
    "best_validation_r2": "double", "loss_curve": "double[]", "validation_r2_curve": "double[]",
}
NN_PARAMS = tuple(f"nn.{k}" for k in (
    "hidden_layers", "k_folds", "max_iterations", "max_dteff_k", "max_dlogg_dex", "max_dmh_dex", "limit_nsigma",
    "max_epochs",
    "batch_size", "learning_rate", "alpha", "tol", "validation_fraction", "n_iter_no_change",
    "min_good_pix_frac", "blas_threads", "seed"))
# cln_nn_folds: FOLD_COLUMNS plus the fold's held-out stars as parallel lists (cln_nn_predictions
# unnests them) and the run's outcome; fold EXCLUDED_FOLD holds the stars that never entered
EXCLUDED_FOLD = -1
STAR_LIST_COLUMNS = {"obsids": "bigint[]", **{c: "double[]" for c in (*LABELS, *PRED_NAMES, *RESID_NAMES)},
                     "removed": "boolean[]", "reason": "varchar[]", "n_masked_pix": "integer[]"}
NN_FOLDS_COLUMNS = {**FOLD_COLUMNS, **STAR_LIST_COLUMNS, "n_iterations": "integer", "converged": "boolean",
                    "stop_reason": "varchar"}


# NamedTuples, not dataclasses: a Python model's code fingerprint reads the source of every mgold
# method it reaches, and a dataclass's generated __init__ / __eq__ have none (pymodel.code_fingerprint)
class FoldFit(NamedTuple):
    """One fold network of one iteration."""

    iteration: int
    fold: int
    n_train: int
    n_test: int
    random_state: int
    n_epochs: int
    stopped_early: bool          # early stopping ended it before nn.max_epochs
    best_validation_r2: float
    loss_curve: np.ndarray       # training loss per epoch (half mean squared error of standardised labels + L2)
    validation_r2_curve: np.ndarray   # R^2 of the held-back validation stars per epoch


class NNResult(NamedTuple):
    """Everything ``nn_clean`` decided, in id order.

    Per star (``ids``, ``labels``, ``n_masked_pix``, ``excluded``: reason it never entered,
    ``None`` when it did). Per (iteration, star), long format: ``row_iteration``, ``row_star``
    (index into ``ids``), ``row_fold``, ``row_pred`` (m, 3), ``row_resid`` (m, 3, prediction -
    label), ``row_removed``. Per (iteration, fold): ``folds``.
    """

    ids: np.ndarray
    labels: np.ndarray
    n_masked_pix: np.ndarray
    excluded: np.ndarray
    row_iteration: np.ndarray
    row_star: np.ndarray
    row_fold: np.ndarray
    row_pred: np.ndarray
    row_resid: np.ndarray
    row_removed: np.ndarray
    folds: tuple[FoldFit, ...]
    base_limits: np.ndarray      # (3,) the paper's limits: nn.max_dteff_k, nn.max_dlogg_dex, nn.max_dmh_dex
    limits: np.ndarray           # (iterations, 3) the limits each iteration applied (>= base_limits)
    converged: bool
    stop_reason: str

    @property
    def n_iterations(self) -> int:
        return int(self.row_iteration.max()) + 1 if self.row_iteration.size else 0

    def kept(self) -> np.ndarray:
        """(n,) True for the stars that entered and were never removed."""
        out = np.array([e is None for e in self.excluded], dtype=bool)
        out[self.row_star[self.row_removed]] = False
        return out

    def final_rows(self) -> np.ndarray:
        """Row indices of the last iteration (its held-out predictions: paper Fig. 8)."""
        return np.flatnonzero(self.row_iteration == self.n_iterations - 1)

    def to_tables(self) -> tuple[pa.Table, pa.Table]:
        """(per-star table ``cln_nn_predictions``, per-fold table ``cln_nn_folds``).

        Per-star: one row per (iteration, star that took part), plus one row per star that
        never entered (iteration 0, fold / predictions NULL, removed, its reason).
        """
        out = [i for i in range(self.ids.size) if self.excluded[i] is not None]
        star = np.r_[self.row_star, np.asarray(out, dtype=np.int64)]
        n_out = len(out)
        reason = [REASON_RESIDUAL if r else None for r in self.row_removed] + [self.excluded[i] for i in out]
        null = np.r_[np.zeros(self.row_star.size, bool), np.ones(n_out, bool)]
        cols: dict[str, pa.Array] = {
            "obsid": pa.array(self.ids[star], pa.int64()),
            "iteration": pa.array(np.r_[self.row_iteration, np.zeros(n_out, np.int32)].astype(np.int32)),
            "fold": pa.array(np.r_[self.row_fold, np.zeros(n_out, np.int32)].astype(np.int32), mask=null),
        }
        for j, c in enumerate(LABELS):
            cols[c] = pa.array(self.labels[star, j], pa.float64(), from_pandas=True)
        for names, values in ((PRED_NAMES, self.row_pred), (RESID_NAMES, self.row_resid)):
            full = np.r_[values, np.zeros((n_out, 3))]
            for j, c in enumerate(names):
                cols[c] = pa.array(full[:, j], pa.float64(), mask=null)
        cols["removed"] = pa.array(np.r_[self.row_removed, np.ones(n_out, bool)])
        cols["reason"] = pa.array(reason, pa.string())
        cols["n_masked_pix"] = pa.array(self.n_masked_pix[star].astype(np.int32))
        per_star = pa.table(cols)
        f = self.folds
        per_fold = pa.table({
            "iteration": pa.array([x.iteration for x in f], pa.int32()),
            "fold": pa.array([x.fold for x in f], pa.int32()),
            "n_train": pa.array([x.n_train for x in f], pa.int32()),
            "n_test": pa.array([x.n_test for x in f], pa.int32()),
            "random_state": pa.array([x.random_state for x in f], pa.int64()),
            "n_epochs": pa.array([x.n_epochs for x in f], pa.int32()),
            "stopped_early": pa.array([x.stopped_early for x in f], pa.bool_()),
            **{f"limit_{c}": pa.array([float(self.limits[x.iteration, j]) for x in f], pa.float64())
               for j, c in enumerate(RESID_NAMES)},
            "best_validation_r2": pa.array([x.best_validation_r2 for x in f], pa.float64()),
            "loss_curve": pa.array([x.loss_curve.tolist() for x in f], pa.list_(pa.float64())),
            "validation_r2_curve": pa.array([x.validation_r2_curve.tolist() for x in f], pa.list_(pa.float64())),
        })
        return per_star, per_fold

    @classmethod
    def from_tables(cls, per_star: pa.Table, per_fold: pa.Table, base_limits, converged: bool,
                    stop_reason: str) -> "NNResult":
        """The result back from the tables of ``to_tables`` (``cln_nn_predictions``, and ``cln_nn_folds``
        without its fold ``EXCLUDED_FOLD`` row), e.g. to run ``nn_summary`` on a built warehouse."""
        d = {c: per_star[c].to_numpy(zero_copy_only=False) for c in ("obsid", "iteration")}
        fold = per_star["fold"].fill_null(EXCLUDED_FOLD).to_numpy(zero_copy_only=False)
        ids, first = np.unique(d["obsid"].astype(np.int64), return_index=True)
        labels = np.column_stack([per_star[c].to_numpy(zero_copy_only=False).astype(np.float64)[first]
                                  for c in LABELS]).reshape(-1, 3)
        excluded = np.full(ids.size, None, dtype=object)
        out = np.flatnonzero(fold == EXCLUDED_FOLD)
        excluded[np.searchsorted(ids, d["obsid"][out])] = np.asarray(per_star["reason"].to_pylist(), object)[out]
        rows = np.flatnonzero(fold != EXCLUDED_FOLD)
        rows = rows[np.lexsort((d["obsid"][rows], d["iteration"][rows]))]
        star = np.searchsorted(ids, d["obsid"][rows])

        def mat(names):
            return np.column_stack([per_star[c].to_numpy(zero_copy_only=False).astype(np.float64)[rows]
                                    for c in names]).reshape(-1, 3)

        f = per_fold.sort_by([("iteration", "ascending"), ("fold", "ascending")]).to_pylist()
        folds = tuple(FoldFit(**{k: r[k] for k in ("iteration", "fold", "n_train", "n_test", "random_state",
                                                   "n_epochs", "stopped_early", "best_validation_r2")},
                              loss_curve=np.asarray(r["loss_curve"], dtype=np.float64),
                              validation_r2_curve=np.asarray(r["validation_r2_curve"], dtype=np.float64))
                      for r in f)
        limits = {r["iteration"]: [r[f"limit_{c}"] for c in RESID_NAMES] for r in f}
        return cls(ids=ids, labels=labels, n_masked_pix=per_star["n_masked_pix"].to_numpy(zero_copy_only=False)[first],
                   excluded=excluded, row_iteration=d["iteration"][rows].astype(np.int32),
                   row_star=star.astype(np.int64), row_fold=fold[rows].astype(np.int32), row_pred=mat(PRED_NAMES),
                   row_resid=mat(RESID_NAMES),
                   row_removed=per_star["removed"].to_numpy(zero_copy_only=False)[rows].astype(bool),
                   folds=folds, base_limits=np.asarray(base_limits, dtype=np.float64),
                   limits=np.asarray([limits[i] for i in sorted(limits)], dtype=np.float64).reshape(-1, 3),
                   converged=bool(converged), stop_reason=str(stop_reason))

    def fold_table(self) -> pa.Table:
        """The ``cln_nn_folds`` rows (``NN_FOLDS_COLUMNS``): one per (iteration, fold) with its fit record
        and its held-out stars as parallel lists in obsid order, plus one row (iteration 0, fold
        ``EXCLUDED_FOLD``, fit columns NULL) for the stars that never entered, if any."""
        per_star, per_fold = self.to_tables()
        fold = per_star["fold"].fill_null(EXCLUDED_FOLD).to_numpy()
        it = per_star["iteration"].to_numpy()
        # the stars that never entered go last, after the fit records of self.folds (iteration, fold order)
        order = np.lexsort((per_star["obsid"].to_numpy(), fold, it, fold == EXCLUDED_FOLD))
        keys = np.column_stack([it[order], fold[order]])
        starts = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)])
        offsets = pa.array(np.r_[starts, order.size].astype(np.int32))
        stars = per_star.take(pa.array(order))
        lists = {("obsids" if c == "obsid" else c): pa.ListArray.from_arrays(offsets, stars[c].combine_chunks())
                 for c in PREDICTION_COLUMNS if c not in ("iteration", "fold")}
        n_out = int((keys[starts, 1] == EXCLUDED_FOLD).sum())
        stats = {c: pa.concat_arrays([per_fold[c].combine_chunks(),
                                      pa.nulls(n_out, per_fold.schema.field(c).type)])
                 for c in FOLD_COLUMNS if c not in ("iteration", "fold", "n_test")}
        n = starts.size
        return pa.table({
            "iteration": pa.array(keys[starts, 0], pa.int32()), "fold": pa.array(keys[starts, 1], pa.int32()),
            "n_test": pa.array(np.diff(np.r_[starts, order.size]), pa.int32()), **stats, **lists,
            "n_iterations": pa.array(np.full(n, self.n_iterations), pa.int32()),
            "converged": pa.array(np.full(n, self.converged)),
            "stop_reason": pa.array([self.stop_reason] * n, pa.string()),
        }).select(list(NN_FOLDS_COLUMNS))


def nn_inputs(flux: np.ndarray, ivar: np.ndarray | None, cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, p) spectra -> (X, excluded, n_masked): median-normalised float32 flux with NaN on masked
    pixels, the reason each star cannot enter (``None`` when it can), masked pixels per star."""
    flux = np.asarray(flux, dtype=np.float64)
    if flux.ndim != 2:
        raise ValueError(f"nn: spectra must be a 2-D (stars, pixels) array, got shape {flux.shape}")
    good = np.isfinite(flux)
    if ivar is not None:
        ivar = np.asarray(ivar, dtype=np.float64)
        if ivar.shape != flux.shape:
            raise ValueError(f"nn: ivar shape {ivar.shape} differs from flux shape {flux.shape}")
        good &= np.isfinite(ivar) & (ivar > 0)
    n_good = good.sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # all-masked rows: flagged below
        med = np.nanmedian(np.where(good, flux, np.nan), axis=1)
    excluded = np.full(flux.shape[0], None, dtype=object)
    excluded[~(med > 0)] = REASON_NONPOSITIVE
    excluded[n_good < cfg.nn.min_good_pix_frac * flux.shape[1]] = REASON_FEW_PIXELS
    scale = np.where(med > 0, med, 1.0)
    X = np.where(good, flux / scale[:, None], np.nan).astype(np.float32)
    return X, excluded, (flux.shape[1] - n_good).astype(np.int32)


def fold_assignment(n: int, k: int, seed: int, iteration: int) -> np.ndarray:
    """(n,) fold of each of ``n`` stars (in id order): a seeded deal into ``k`` folds whose sizes
    differ by at most one."""
    perm = np.random.default_rng(np.random.SeedSequence([seed, iteration])).permutation(n)
    fold = np.empty(n, dtype=np.int32)
    fold[perm] = np.arange(n) % k
    return fold


def min_stars_for(k: int, validation_fraction: float) -> int:
    """Fewest stars K folds can be trained on: the smallest training set (n - ceil(n / k)) must
    hold back at least 2 early-stopping validation stars (sklearn's minimum) and keep one."""
    n = k
    while True:
        n_train = n - math.ceil(n / k)
        n_val = math.ceil(validation_fraction * n_train)
        if n_val >= 2 and n_train - n_val >= 1:
            return n
        n += 1


def fold_seed(seed: int, iteration: int, fold: int) -> int:
    """The ``random_state`` of one fold network."""
    return int(np.random.SeedSequence([seed, iteration, fold]).generate_state(1)[0])


def standardise_fold(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masked (NaN) pixels -> the training stars' median of that pixel (0 when none is good), then
    every pixel standardised with the training stars' mean / std (std 0 -> 1). float32."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # a pixel masked in every training star
        fill = np.nanmedian(X_train, axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0).astype(np.float32)
    tr = np.where(np.isnan(X_train), fill, X_train)
    te = np.where(np.isnan(X_test), fill, X_test)
    mu = tr.mean(axis=0, dtype=np.float64)
    sd = tr.std(axis=0, dtype=np.float64)
    sd = np.where(sd > 0, sd, 1.0)
    return (((tr - mu) / sd).astype(np.float32), ((te - mu) / sd).astype(np.float32))


def fit_fold(X_train: np.ndarray, Y_train: np.ndarray, X_test: np.ndarray, cfg: Config,
             random_state: int) -> tuple[np.ndarray, dict]:
    """Train one fold network on (X_train, Y_train) and predict X_test -> ((m, 3) predictions in
    label units, the fit's record: n_epochs, stopped_early, curves)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    n = cfg.nn
    Xtr, Xte = standardise_fold(X_train, X_test)
    y_mu = Y_train.mean(axis=0)
    y_sd = Y_train.std(axis=0)
    y_sd = np.where(y_sd > 0, y_sd, 1.0)
    n_fit = Xtr.shape[0] - math.ceil(n.validation_fraction * Xtr.shape[0])   # sklearn's early-stopping split
    net = MLPRegressor(
        hidden_layer_sizes=tuple(int(h) for h in n.hidden_layers), activation="relu", solver="adam",
        alpha=n.alpha, batch_size=max(1, min(int(n.batch_size), n_fit)), learning_rate_init=n.learning_rate,
        max_iter=n.max_epochs, tol=n.tol, early_stopping=True, validation_fraction=n.validation_fraction,
        n_iter_no_change=n.n_iter_no_change, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # reaching max_epochs is recorded, not warned
        net.fit(Xtr, ((Y_train - y_mu) / y_sd).astype(np.float32))
    pred = net.predict(Xte).astype(np.float64).reshape(-1, 3) * y_sd + y_mu
    return pred, {"n_epochs": int(net.n_iter_), "stopped_early": bool(net.n_iter_ < n.max_epochs),
                  "best_validation_r2": float(net.best_validation_score_),
                  "loss_curve": np.asarray(net.loss_curve_, dtype=np.float64),
                  "validation_r2_curve": np.asarray(net.validation_scores_, dtype=np.float64)}


def nn_clean(X: np.ndarray, Y: np.ndarray, ids: np.ndarray, cfg: Config, seed: int,
             ivar: np.ndarray | None = None) -> NNResult:
    """Iterative K-fold neural-net cleaning (module docstring) of ``X`` (n, p) red-grid spectra
    with labels ``Y`` (n, 3: teff_k, logg_dex, mh_dex) and unique int ``ids`` (obsid); ``ivar``
    (n, p) marks bad pixels with <= 0. Same inputs, seed and config -> bit-identical result."""
    from threadpoolctl import threadpool_limits

    ids = np.asarray(ids)
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[1] != 3:
        raise ValueError(f"nn: labels must be (stars, 3) teff_k, logg_dex, mh_dex, got shape {Y.shape}")
    if not (len(X) == len(Y) == ids.size) or (ivar is not None and len(ivar) != ids.size):
        raise ValueError(f"nn: {len(X)} spectra, {len(Y)} label rows and {ids.size} ids: one each per star")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"nn: ids must be integers (obsid), got dtype {ids.dtype}")
    order = np.argsort(ids, kind="stable")
    ids, Y = ids[order].astype(np.int64), Y[order]
    dup = ids[1:][ids[1:] == ids[:-1]]
    if dup.size:
        raise ValueError(f"nn: duplicate id {int(dup[0])}: one spectrum per star")
    Xn, excluded, n_masked = nn_inputs(np.asarray(X)[order], None if ivar is None else np.asarray(ivar)[order], cfg)
    excluded[(excluded == None) & ~np.isfinite(Y).all(axis=1)] = REASON_NAN_LABEL  # noqa: E711 (object array)

    k = int(cfg.nn.k_folds)
    if k < 2:
        raise ValueError(f"nn: nn.k_folds must be at least 2, got {k}")
    limits = np.array([cfg.nn.max_dteff_k, cfg.nn.max_dlogg_dex, cfg.nn.max_dmh_dex], dtype=np.float64)
    min_stars = min_stars_for(k, float(cfg.nn.validation_fraction))
    active = np.flatnonzero(excluded == None)  # noqa: E711
    if active.size < min_stars:
        raise TooFewStars(f"nn: {active.size} usable star(s) of {ids.size}, need at least {min_stars} "
                          f"(nn.k_folds = {k}, nn.validation_fraction = {cfg.nn.validation_fraction}); "
                          f"excluded: {_reason_counts(excluded)}", ids, Y, excluded, n_masked)
    rows: dict[str, list] = {"it": [], "star": [], "fold": [], "pred": [], "removed": []}
    fits: list[FoldFit] = []
    iter_limits: list[np.ndarray] = []
    converged, stop_reason = False, "max_iterations"
    with threadpool_limits(limits=int(cfg.nn.blas_threads), user_api="blas"):
        for it in range(int(cfg.nn.max_iterations)):
            if active.size < min_stars:
                stop_reason = "too_few_stars"
                break
            fold = fold_assignment(active.size, k, seed, it)
            pred = np.empty((active.size, 3))
            for f in range(k):
                te = fold == f
                rs = fold_seed(seed, it, f)
                pred[te], rec = fit_fold(Xn[active[~te]], Y[active[~te]], Xn[active[te]], cfg, rs)
                if not np.isfinite(pred[te]).all():
                    raise ValueError(f"nn: iteration {it} fold {f} predicted non-finite labels "
                                     f"(training diverged: lower nn.learning_rate)")
                fits.append(FoldFit(it, f, int((~te).sum()), int(te.sum()), rs, **rec))
            lim = removal_limits(pred - Y[active], limits, float(cfg.nn.limit_nsigma))
            iter_limits.append(lim)
            bad = (np.abs(pred - Y[active]) > lim).any(axis=1)
            for key, value in (("it", np.full(active.size, it)), ("star", active), ("fold", fold),
                               ("pred", pred), ("removed", bad)):
                rows[key].append(value)
            active = active[~bad]
            if not bad.any():
                converged, stop_reason = True, "converged"
                break
    star = np.concatenate(rows["star"])
    pred = np.concatenate(rows["pred"])
    return NNResult(
        ids=ids, labels=Y, n_masked_pix=n_masked, excluded=excluded,
        row_iteration=np.concatenate(rows["it"]).astype(np.int32), row_star=star.astype(np.int64),
        row_fold=np.concatenate(rows["fold"]).astype(np.int32), row_pred=pred, row_resid=pred - Y[star],
        row_removed=np.concatenate(rows["removed"]), folds=tuple(fits), base_limits=limits,
        limits=np.asarray(iter_limits).reshape(-1, 3),
        converged=converged,
        stop_reason=stop_reason)


def removal_limits(resid: np.ndarray, limits: np.ndarray, nsigma: float) -> np.ndarray:
    """(3,) the limit on |held-out residual| per parameter: the paper's ``limits``, raised to
    ``nsigma`` robust sigmas of these residuals when the net scatters more (nsigma 0: ``limits``)."""
    if nsigma <= 0:
        return np.asarray(limits, dtype=np.float64)
    return np.maximum(limits, nsigma * np.array([robust_sigma(resid[:, j]) for j in range(resid.shape[1])]))


def _reason_counts(excluded: np.ndarray) -> str:
    reasons, counts = np.unique([e for e in excluded if e is not None], return_counts=True)
    return ", ".join(f"{c} {r}" for r, c in zip(reasons, counts)) or "none"


def robust_sigma(x: np.ndarray) -> float:
    """1.4826 x the median absolute deviation from the median (NaN when empty)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def nn_summary(result: NNResult) -> dict:
    """Held-out scatter of the last iteration's stars per parameter (robust sigma, std, median
    bias) and the counts removed, beside the paper's 14 K / 0.06 / 0.05 dex and 27 of 5,132."""
    final = result.final_rows()
    kept = final[~result.row_removed[final]]
    entered = int(sum(e is None for e in result.excluded))
    n_removed = int(result.row_removed.sum())
    scatter = {}
    for j, c in enumerate(LABELS):
        r = result.row_resid[kept, j]
        scatter[c] = {"robust_sigma": robust_sigma(r), "std": float(np.std(r)) if r.size else float("nan"),
                      "median": float(np.median(r)) if r.size else float("nan"), "paper": PAPER["scatter"][c]}
    return {
        "n_input": int(result.ids.size), "n_entered": entered, "n_excluded": int(result.ids.size - entered),
        "n_removed": n_removed, "removed_fraction": n_removed / entered if entered else float("nan"),
        "n_kept": int(result.kept().sum()), "n_iterations": result.n_iterations,
        "removed_per_iteration": [int(result.row_removed[result.row_iteration == i].sum())
                                  for i in range(result.n_iterations)],
        "converged": result.converged, "stop_reason": result.stop_reason, "scatter": scatter,
        "limits_per_iteration": result.limits.tolist(),
        # parameters whose removal limit the net's own scatter raised above the paper's (nn.limit_nsigma)
        "limited_by_scatter": [c for j, c in enumerate(LABELS) if (result.limits[:, j] > result.base_limits[j]).any()],
        "paper_removed": PAPER["n_removed"], "paper_input": PAPER["n_input"],
        "paper_removed_fraction": PAPER["n_removed"] / PAPER["n_input"],
    }


# --------------------------------------------------------------------------- the model

# every star DBSCAN and inspection kept, with its red-grid spectrum (NULL when it has none: flagged
# few_good_pixels by nn_inputs, never a crash)
KEPT_RED_SQL = """
select k.obsid, k.teff_k, k.logg_dex, k.mh_dex, r.flux, r.ivar
from cln_kept k
left join spc_red_grid r using (obsid)
order by k.obsid
"""


def spectra_matrix(col: pa.ChunkedArray | pa.Array, n_pix: int | None = None) -> np.ndarray:
    """(rows, n_pix) float32 of a fixed-size list column; a NULL list becomes a row of NaN."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = arr.type.list_size if pa.types.is_fixed_size_list(arr.type) else int(n_pix or 0)
    out = np.full((len(arr), n), np.nan, dtype=np.float32)
    valid = ~arr.is_null().to_numpy(zero_copy_only=False)
    if valid.any():
        out[valid] = arr.filter(pa.array(valid)).flatten().to_numpy(zero_copy_only=False).reshape(-1, n)
    return out


def label_matrix(t: pa.Table) -> np.ndarray:
    """(rows, 3) float64 teff_k, logg_dex, mh_dex of a table's columns (NULL -> NaN)."""
    if not t.num_rows:
        return np.empty((0, 3))
    return np.column_stack([t[c].to_numpy(zero_copy_only=False).astype(np.float64) for c in LABELS])


@python_model(
    name="cln_nn_folds", layer="clean", columns=NN_FOLDS_COLUMNS, inputs={"kept": KEPT_RED_SQL}, params=NN_PARAMS,
    description="Neural-net cleaning of cln_kept (paper §2.5): per iteration and fold, the fold network's "
                "training record (epochs, loss and validation R^2 curves, removal limits) and its held-out "
                "stars with their labels, predictions, residuals and whether they were removed.",
    grain="one row per (iteration, fold); fold -1: the stars that never entered (few good pixels, NaN label; "
          "too few stars for the folds: all kept unjudged)",
    tests="unique(iteration, fold); not_null(iteration, fold, n_test, obsids, n_iterations, stop_reason)",
)
def build(ctx):
    t = ctx.table("kept")
    Y = label_matrix(t)
    ids = t["obsid"].to_numpy(zero_copy_only=False).astype(np.int64)
    try:
        result = nn_clean(spectra_matrix(t["flux"]), Y, ids, ctx.cfg, int(ctx.cfg.nn.seed), spectra_matrix(t["ivar"]))
    except TooFewStars as e:
        if not (e.excluded == None).any():  # noqa: E711 - nothing usable at all: an error, the last tables stay
            raise
        yield e.pass_through()          # a small sample the net cannot judge goes on unjudged, flagged
        return
    yield result.fold_table()

"""BackpropRegressor: single- and multi-output regression."""

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if

from ._base import BaseBackprop, _offers_partial_fit
from .losses import Loss, Poisson, get_loss

_REGRESSION_LOSSES = ("squared_error", "absolute_error", "huber", "poisson")


class BackpropRegressor(RegressorMixin, BaseBackprop):
    """Feed-forward neural network regressor trained by backpropagation.

    Minimises the half squared error (default), the absolute error, the Huber
    loss, the Poisson loss or a user-given :class:`~sklearn_bp.losses.Loss`,
    with mini-batch SGD, Adam or RMSprop. Several outputs are supported. The
    parameter names follow :class:`~sklearn.neural_network.MLPRegressor`
    wherever the meaning is the same.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        Width of each hidden layer. ``()`` gives a linear model.
    activation : str, Activation or sequence of them, default="relu"
        Hidden-layer activation: ``"identity"``, ``"logistic"`` (alias
        ``"sigmoid"``), ``"tanh"``, ``"relu"``, ``"leaky_relu"``, ``"elu"``,
        ``"softplus"``, or an :class:`~sklearn_bp.activations.Activation`; or a
        sequence of these, one per hidden layer (names and instances mixed).
    dropout : float or sequence of float, default=0.0
        Probability, in ``[0, 1)``, of zeroing each hidden unit's output in a
        training step (inverted dropout: kept outputs are scaled by ``1 / (1 -
        dropout)``); a float for every hidden layer or one rate per hidden
        layer. Training only: predictions, ``transform`` and the
        early-stopping score use the whole network. Masks are drawn from
        ``random_state``. Not with ``optimizer="lbfgs"``.
    weight_init : str or callable, default="glorot_uniform"
        Initial weights: ``"glorot_uniform"`` (MLP's draw, bit for bit: weights
        and biases uniform in ``+-sqrt(f / (fan_in + fan_out))``, ``f = 2`` for
        logistic and 6 otherwise), ``"glorot_normal"``, ``"he_uniform"``,
        ``"he_normal"``, ``"lecun_uniform"``, ``"lecun_normal"``,
        ``"orthogonal"`` (``torch.nn.init`` formulas), or a callable
        ``(fan_in, fan_out, rng, dtype) -> array of shape (fan_in, fan_out)``.
        All but ``"glorot_uniform"`` start the biases at zero.
    embedding : {"periodic", "piecewise_linear"}, Embedding or None, default=None
        Numerical feature embeddings before the first dense layer (see
        :mod:`sklearn_bp.embeddings`; options are nested parameters,
        ``embedding__n_frequencies``). Their parameters are in
        ``embedding_params_``. Sparse ``X`` is densified a batch at a time.
        ``None``: the features as they are.
    ensemble_size : int, default=1
        Members of a TabM ensemble (``k``): ``1`` is one network; ``k >= 2``
        trains ``k`` members that share the hidden weights, each with its own
        rank-1 adapters, biases and output layer, on every batch, minimising
        the mean of their losses; predictions average the members
        (probabilities for classifiers). Needs a hidden layer; sparse ``X`` is
        densified a batch at a time.
    ensemble_type : {"tabm", "tabm-mini"}, default="tabm"
        ``"tabm"``: adapters on every hidden layer; ``"tabm-mini"``: one
        per-member scaling of the inputs only.
    loss : str or Loss, default="squared_error"
        ``"squared_error"`` (``0.5 * mean((y - raw) ** 2)``), ``"absolute_error"``,
        ``"huber"`` (``delta=1``), ``"poisson"`` (log link, non-negative ``y``),
        or a :class:`~sklearn_bp.losses.Loss` instance.
    optimizer : str, Optimizer or LBFGS, default="adam"
        ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, an
        :class:`~sklearn_bp.optimizers.Optimizer` instance, whose own
        hyper-parameters are nested parameters (``optimizer__beta_1``), or
        ``"lbfgs"`` / :class:`~sklearn_bp.optimizers.LBFGS` for full-batch
        L-BFGS (MLP's ``solver="lbfgs"``; no ``partial_fit`` then).
    learning_rate_init : float, default=0.001
        Initial learning rate.
    learning_rate : {"constant", "invscaling", "adaptive"} or Schedule, \
            default="constant"
        Learning-rate schedule, for every optimizer: MLP's names or a
        :class:`~sklearn_bp.schedules.Schedule` instance (``StepDecay``,
        ``ExponentialDecay``, ``Cosine``, ``OneCycle`` or your own), whose
        hyper-parameters are nested parameters (``learning_rate__gamma``); see
        :class:`BackpropClassifier` and :mod:`sklearn_bp.schedules`.
    power_t : float, default=0.5
        Exponent of the ``"invscaling"`` schedule (an
        :class:`~sklearn_bp.schedules.InvScaling` instance has its own).
    alpha : float, default=0.0001
        Strength of the L2 penalty on the weights.
    clip_grad_norm : float or None, default=None
        Clip the global L2 norm of all gradients (the ``alpha`` term included)
        to this value before each step, as
        ``torch.nn.utils.clip_grad_norm_`` does; ``None``: no clipping. Not
        with ``optimizer="lbfgs"``.
    batch_size : int or "auto", default="auto"
        Mini-batch size; ``"auto"`` means ``min(200, n_samples)``.
    max_iter : int, default=200
        Maximum number of epochs; with ``optimizer="lbfgs"``, of L-BFGS
        iterations.
    max_fun : int, default=15000
        Only with ``optimizer="lbfgs"``: maximum number of loss evaluations
        (each one a pass over the training set), as in MLP.
    shuffle : bool, default=True
        Whether to shuffle the samples in each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the shuffling, the validation split
        and the dropout masks.
    tol : float, default=1e-4
        Minimum improvement of the loss (or validation score) that counts;
        with ``optimizer="lbfgs"``, also scipy's ``gtol`` (as in MLP).
    n_iter_no_change : int or np.inf, default=10
        Epochs (L-BFGS iterations, with early stopping) without improvement
        tolerated before stopping (``np.inf``: never).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop when the validation
        R^2 stops improving and restore the best weights.
    validation_fraction : float, default=0.1
        Fraction held out for early stopping.
    warm_start : bool, default=False
        Whether ``fit`` continues from the current weights (with a fresh
        optimizer state).
    verbose : bool, default=False
        Print one line per epoch.

    Attributes
    ----------
    coefs_ : list of ndarray
        ``coefs_[i]`` has shape ``(fan_in, fan_out)``: the live weights.
    intercepts_ : list of ndarray
        ``intercepts_[i]`` has shape ``(fan_out,)``: the live biases.
    loss_ : float
        Mean training loss of the last epoch (L-BFGS: the loss at the
        returned parameters, as in MLP).
    best_loss_ : float or None
        Lowest ``loss_`` seen; ``None`` with early stopping.
    loss_curve_ : list of float
        ``loss_`` after each epoch or L-BFGS iteration; accumulates over warm
        starts and ``partial_fit`` calls.
    validation_scores_ : list of float or None
        Validation R^2 after each epoch (early stopping only).
    validation_loss_curve_ : list of float or None
        Validation loss (without the L2 term) after each epoch (early stopping
        only).
    best_validation_score_ : float or None
        Best validation R^2 (early stopping only).
    n_iter_ : int
        Epochs (L-BFGS iterations) run by the last ``fit``, so ``n_iter_ ==
        max_iter`` means it did not converge; ``partial_fit`` calls add one
        each.
    t_ : int
        Training samples seen (an L-BFGS iteration counts the training set
        once); accumulates over warm starts.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        Output link: ``"identity"``, or ``"exp"`` for the Poisson loss.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen during fit, when they are all strings.

    See Also
    --------
    BackpropClassifier : The classification counterpart.
    sklearn.neural_network.MLPRegressor : The multi-layer perceptron of
        scikit-learn, with fixed activations, losses and optimizers.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp import BackpropRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(200, 2))
    >>> y = X[:, 0] - 2 * X[:, 1]
    >>> reg = BackpropRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01,
    ...                         max_iter=300, random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.95
    True
    """

    _parameter_constraints = {
        **BaseBackprop._parameter_constraints,
        "loss": [StrOptions(set(_REGRESSION_LOSSES)), Loss],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        dropout=0.0,
        weight_init="glorot_uniform",
        embedding=None,
        ensemble_size=1,
        ensemble_type="tabm",
        loss="squared_error",
        optimizer="adam",
        learning_rate_init=0.001,
        learning_rate="constant",
        power_t=0.5,
        alpha=0.0001,
        clip_grad_norm=None,
        batch_size="auto",
        max_iter=200,
        max_fun=15000,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        warm_start=False,
        verbose=False,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation,
            dropout=dropout, weight_init=weight_init, embedding=embedding,
            ensemble_size=ensemble_size, ensemble_type=ensemble_type, loss=loss,
            optimizer=optimizer, learning_rate_init=learning_rate_init,
            learning_rate=learning_rate, power_t=power_t, alpha=alpha,
            clip_grad_norm=clip_grad_norm, batch_size=batch_size, max_iter=max_iter,
            max_fun=max_fun, shuffle=shuffle, random_state=random_state, tol=tol,
            n_iter_no_change=n_iter_no_change, early_stopping=early_stopping,
            validation_fraction=validation_fraction, warm_start=warm_start,
            verbose=verbose,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; float32 input is trained in float32.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights.

        Returns
        -------
        self : BackpropRegressor
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight)

    @available_if(_offers_partial_fit)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Run one epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights.

        Returns
        -------
        self : BackpropRegressor
            The estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def _resolve_loss(self):
        return get_loss(self.loss, allowed=_REGRESSION_LOSSES)

    def _encode_target(self, y, *, reset, classes, dtype, incremental):
        Y = np.asarray(y, dtype=dtype)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        self.out_activation_ = self._loss.out_activation_name
        return Y, None

    def _score_raw(self, raw, Y, sample_weight):
        return r2_score(Y, self._loss.link(raw), sample_weight=sample_weight)

    def predict(self, X):
        """Predict target values.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predictions; 1-D when the network has a single output.

        Raises
        ------
        ValueError
            If a prediction overflows (possible with the Poisson loss's
            exponential link), rather than returning ``inf``.
        """
        X = self._validate_for_predict(X)
        pred = self._loss.link(self._forward(X))
        if not np.all(np.isfinite(pred)):
            raise ValueError(
                "Some predictions are not finite: the output link "
                f"({self.out_activation_}) overflowed for these inputs. Inputs far "
                "outside the training range are the usual cause."
            )
        return pred.ravel() if pred.shape[1] == 1 else pred

    def predict_members(self, X):
        """Each ensemble member's predictions (``ensemble_size`` of them).

        :meth:`predict` returns their mean. A network without ensemble has
        one member.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y : ndarray of shape (n_samples, ensemble_size) or \
                (n_samples, ensemble_size, n_outputs)
            Predictions; the last axis is dropped for a single output.
        """
        pred = self._loss.link(self._member_outputs(X))  # (k, n, n_outputs)
        pred = pred.transpose(1, 0, 2)
        return pred[:, :, 0] if pred.shape[2] == 1 else pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.positive_only = self.loss == "poisson" or isinstance(
            self.loss, Poisson
        )
        return tags

"""BackpropClassifier: target encoding and probabilistic predictions."""

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d

from ._base import BaseBackprop, _offers_partial_fit
from .losses import LogLoss, Loss, get_loss


def _check_classification_targets(y):
    """scikit-learn's check, with a message that says what is wrong with object labels.

    scikit-learn calls any object array whose first label is not a string
    "unknown" and suggests a regression target, and one whose first label is a
    string fails to sort; for labels of mixed types (``[1, "a"]``) or numbers
    in an object array, say so instead.
    """
    try:
        check_classification_targets(y)
    except (ValueError, TypeError) as exc:
        # TypeError: ["a", 1] starts with a string, gets past that test, and
        # then fails to sort ("'<' not supported between 'int' and 'str'").
        if getattr(y, "dtype", None) is not np.dtype(object):
            raise
        types = sorted({type(v).__name__ for v in np.ravel(y)})
        if len(types) > 1:
            problem = f"y mixes labels of several types ({', '.join(types)})"
        else:
            problem = f"y is an object array of {types[0]} labels"
        raise ValueError(
            f"Unknown label type: {problem}. Labels must all be strings, or all "
            "numbers in a numeric array: convert them, e.g. with y.astype(str) "
            "or y.astype(int)."
        ) from exc


def _check_labels_in(y, classes, name):
    """Raise if ``y`` holds labels that are not in ``classes``."""
    unseen = np.setdiff1d(np.unique(y), classes)
    if unseen.size:
        raise ValueError(
            f"y contains classes {unseen.tolist()} that are not in {name} "
            f"{np.asarray(classes).tolist()}; the set of classes is fixed by the "
            "first fit (warm_start) or partial_fit call."
        )


def _binarize(binarizer, y, chunk=1 << 15):
    """``binarizer.transform(y)`` as a uint8 array, computed chunk by chunk."""
    n_samples = y.shape[0]
    first = binarizer.transform(y[:chunk]).astype(np.uint8)
    if n_samples <= chunk:
        return first
    Y = np.empty((n_samples, first.shape[1]), dtype=np.uint8)
    Y[:chunk] = first
    for start in range(chunk, n_samples, chunk):
        Y[start : start + chunk] = binarizer.transform(y[start : start + chunk])
    return Y


class BackpropClassifier(ClassifierMixin, BaseBackprop):
    """Feed-forward neural network classifier trained by backpropagation.

    Minimises the cross-entropy (``loss="log_loss"``) or a user-given
    :class:`~sklearn_bp.losses.Loss` with mini-batch SGD, Adam or RMSprop. The
    parameter names follow :class:`~sklearn.neural_network.MLPClassifier`
    wherever the meaning is the same.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        Width of each hidden layer. ``()`` gives a network without hidden layer.
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
    loss : "log_loss" or Loss, default="log_loss"
        The loss. ``"log_loss"`` uses a softmax output for multiclass targets
        and logistic outputs for binary and multilabel targets;
        ``LogLoss(label_smoothing=0.1)`` trains against smoothed targets.
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
        Learning-rate schedule, for every optimizer; the rate is constant
        within an epoch. ``"invscaling"`` uses ``learning_rate_init / (t_ + 1)
        ** power_t`` after each epoch; ``"adaptive"`` divides the rate by 5 each
        time training stops improving and stops once it is below 1e-6 (MLP's
        schedules). Or a :class:`~sklearn_bp.schedules.Schedule` instance, whose
        own hyper-parameters are nested parameters (``learning_rate__gamma``):
        :class:`~sklearn_bp.schedules.StepDecay`,
        :class:`~sklearn_bp.schedules.ExponentialDecay`,
        :class:`~sklearn_bp.schedules.Cosine`,
        :class:`~sklearn_bp.schedules.OneCycle` (PyTorch's schedulers, stepped
        once per epoch; their length defaults to ``max_iter``) or your own.
        Ignored by ``optimizer="lbfgs"``.
    power_t : float, default=0.5
        Exponent of the ``"invscaling"`` schedule (an
        :class:`~sklearn_bp.schedules.InvScaling` instance has its own).
    alpha : float, default=0.0001
        Strength of the L2 penalty ``alpha / (2 * sum of batch weights) *
        sum ||W||^2`` on the weights (not the biases).
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
        tolerated before stopping, or lowering the rate with
        ``learning_rate="adaptive"`` (``np.inf``: never).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified for
        single-label targets), stop when the validation accuracy stops
        improving and restore the best weights.
    validation_fraction : float, default=0.1
        Fraction held out for early stopping.
    warm_start : bool, default=False
        Whether ``fit`` continues from the current weights (with a fresh
        optimizer state).
    verbose : bool, default=False
        Print one line per epoch.
    class_weight : dict, "balanced" or None, default=None
        Class weights, multiplied into ``sample_weight``; ``"balanced"`` uses
        ``n_samples / (n_classes * np.bincount(y))`` of the data passed to the
        call.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (``np.arange(n_labels)`` for multilabel targets).
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
        Validation accuracy after each epoch (early stopping only).
    validation_loss_curve_ : list of float or None
        Validation loss (without the L2 term) after each epoch (early stopping
        only).
    best_validation_score_ : float or None
        Best validation accuracy (early stopping only).
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
        Number of output units.
    out_activation_ : str
        Output link: ``"logistic"`` or ``"softmax"`` for log-loss.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen during fit, when they are all strings.

    See Also
    --------
    BackpropRegressor : The regression counterpart.
    sklearn.neural_network.MLPClassifier : The multi-layer perceptron of
        scikit-learn, with fixed activations, losses and optimizers.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_bp import BackpropClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = BackpropClassifier(hidden_layer_sizes=(16,), max_iter=300,
    ...                          learning_rate_init=0.01, random_state=0)
    >>> clf.fit(X, y).score(X, y) > 0.9
    True
    >>> clf.predict_proba(X[:1]).shape
    (1, 3)
    """

    _parameter_constraints = {
        **BaseBackprop._parameter_constraints,
        "loss": [StrOptions({"log_loss"}), Loss],
        "class_weight": [dict, StrOptions({"balanced"}), None],
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
        loss="log_loss",
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
        class_weight=None,
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
        self.class_weight = class_weight

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; float32 input is trained in float32.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a binary indicator matrix for multilabel targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights.

        Returns
        -------
        self : BackpropClassifier
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight)

    @available_if(_offers_partial_fit)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Run one epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a binary indicator matrix for multilabel targets.
        classes : array-like of shape (n_classes,), default=None
            All the classes that can ever appear. Required on the first call
            (not for multilabel targets), ignored afterwards.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights.

        Returns
        -------
        self : BackpropClassifier
            The estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _resolve_loss(self):
        return get_loss(self.loss, allowed=("log_loss",))

    def _encode_target(self, y, *, reset, classes, dtype, incremental):
        _check_classification_targets(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        target_type = type_of_target(y)
        multilabel = target_type == "multilabel-indicator"
        if reset:
            self._fit_classes(y, multilabel, classes, incremental)
        else:
            self._check_classes(y, multilabel, classes, incremental)
        if classes is not None and not multilabel:
            _check_labels_in(y, self.classes_, "classes")
        # type_of_target(self.classes_), without its validation pass: the
        # classes are already known to be valid labels, at least 2 of them
        self._loss = self._loss._for_target(
            target_type if self._multilabel
            else "multiclass" if len(self.classes_) > 2 else "binary"
        )
        self.out_activation_ = self._loss.out_activation_name
        # 0/1 indicators kept as uint8 (an eighth of float64; the training
        # loop converts each batch to the parameters' dtype), built in chunks
        # so that the binarizer's int64 output never exists for all rows.
        Y = _binarize(self._label_binarizer, y)
        return Y, None if self._multilabel else y

    def _fit_classes(self, y, multilabel, classes, incremental):
        if multilabel:
            binarizer = LabelBinarizer().fit(y)
        elif classes is not None:
            binarizer = LabelBinarizer().fit(np.asarray(classes))
        elif incremental:
            raise ValueError(
                "classes must be passed on the first call to partial_fit "
                "(all the labels that can ever appear)."
            )
        else:
            binarizer = LabelBinarizer().fit(y)
        if len(binarizer.classes_) < 2 and not multilabel:
            raise ValueError(
                "BackpropClassifier needs samples of at least 2 classes; the "
                f"data contains only one class: {binarizer.classes_[0]!r}."
            )
        self._label_binarizer = binarizer
        self.classes_ = binarizer.classes_
        self._multilabel = multilabel

    def _check_classes(self, y, multilabel, classes, incremental):
        """A later call (warm start, partial_fit) must keep the classes."""
        if self._multilabel != multilabel:
            raise ValueError(
                "The target type changed: the estimator was fitted on "
                f"{'multilabel' if self._multilabel else 'single-label'} targets."
            )
        if self._multilabel:
            if y.shape[1] != len(self.classes_):
                raise ValueError(
                    f"y has {y.shape[1]} labels but the estimator was fitted "
                    f"with {len(self.classes_)}."
                )
            return
        if classes is not None and not np.array_equal(
            np.unique(np.asarray(classes)), self.classes_
        ):
            raise ValueError(
                f"classes={np.asarray(classes).tolist()} is not the same as on the "
                f"first call to partial_fit, {self.classes_.tolist()}; the set of "
                "classes cannot change (clone the estimator to start anew)."
            )
        if incremental:
            _check_labels_in(y, self.classes_, "classes_")
        elif not np.array_equal(np.unique(y), self.classes_):
            # MLP's rule: a warm start on a subset of the classes would train
            # the missing ones towards probability 0.
            raise ValueError(
                "warm_start=True needs y to hold the same classes as the previous "
                f"fit, {self.classes_.tolist()}; y has "
                f"{np.unique(y).tolist()}. Set warm_start=False (or clone the "
                "estimator) to fit a new network."
            )

    def _apply_class_weight(self, sample_weight, y, dtype):
        if self.class_weight is None:
            return sample_weight
        y = column_or_1d(y) if (np.ndim(y) == 2 and y.shape[1] == 1) else y
        weights = compute_sample_weight(self.class_weight, y).astype(dtype)
        return weights if sample_weight is None else weights * sample_weight

    def _score_raw(self, raw, Y, sample_weight):
        # Accuracy on class indices: the same as score() without decoding labels.
        if self._multilabel or raw.shape[1] == 1:
            predicted, true = raw > 0, Y > 0.5
        else:
            predicted, true = np.argmax(raw, axis=1), np.argmax(Y, axis=1)
        return accuracy_score(true, predicted, sample_weight=sample_weight)

    def _decode(self, raw):
        if self._multilabel:
            return (raw > 0).astype(int)
        if raw.shape[1] == 1:
            return self.classes_[(raw[:, 0] > 0).astype(int)]
        return self.classes_[np.argmax(raw, axis=1)]

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Predicted classes, or an indicator matrix for multilabel targets.
        """
        X = self._validate_for_predict(X)
        return self._decode(self._forward(X))

    def decision_function(self, X):
        """Raw output of the network (the logits, before the output link).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            For binary targets a 1-D array whose positive values predict
            ``classes_[1]``; otherwise one column per class or label.
        """
        X = self._validate_for_predict(X)
        raw = self._forward(X)
        return raw.ravel() if raw.shape[1] == 1 and not self._multilabel else raw

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probability of each class in ``classes_`` (of each label for
            multilabel targets, strictly between 0 and 1). Rows sum to 1 for
            single-label targets. Never below the smallest normal number of
            the dtype (see :meth:`predict_log_proba`).
        """
        X = self._validate_for_predict(X)
        return self._proba(self._forward(X))

    def predict_proba_members(self, X):
        """Each ensemble member's class probabilities.

        :meth:`predict_proba` returns their mean (probabilities are averaged,
        not logits, as in TabM). A network without ensemble has one member.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        proba : ndarray of shape (n_samples, ensemble_size, n_classes)
            Each member's :meth:`predict_proba`.
        """
        return np.stack([self._proba(raw) for raw in self._member_outputs(X)], axis=1)

    def predict_members(self, X):
        """Each ensemble member's predicted labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y : ndarray of shape (n_samples, ensemble_size) or \
                (n_samples, ensemble_size, n_labels)
            Each member's :meth:`predict`.
        """
        return np.stack([self._decode(raw) for raw in self._member_outputs(X)], axis=1)

    def _proba(self, raw):
        """Class probabilities from raw outputs (see predict_proba)."""
        if raw.shape[1] == 1 and not self._multilabel:
            proba = self._loss.link(raw)
            if isinstance(self._loss, LogLoss):
                # p(class 0) from the mirrored raw output: exact, not 1 - p rounded
                proba = np.hstack([self._loss.link(-raw), proba])
            else:
                proba = np.hstack([1 - proba, proba])
        else:
            proba = self._loss.link(raw)
        # Floored at the smallest normal number (see predict_log_proba); each
        # label's probability strictly below 1 too, as its complement is the
        # probability of the label's absence (scikit-learn's multilabel
        # contract: values in the open interval (0, 1)).
        np.maximum(proba, np.finfo(proba.dtype).tiny, out=proba)
        if self._multilabel:
            below_one = np.nextafter(proba.dtype.type(1), proba.dtype.type(0))
            np.minimum(proba, below_one, out=proba)
        return proba

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities, always finite.

        Computed as a log-softmax or log-sigmoid of the raw output, never as the
        log of a rounded probability, and floored at the log of the smallest
        normal number (about -708 in float64, -87 in float32), where
        :meth:`predict_proba` is floored at that number: below it a probability
        has too few digits to order classes, and both methods order them alike
        (as scikit-learn's ``check_classifiers_train`` requires: a confident
        L-BFGS fit puts logits that far apart).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probability of each class in ``classes_``.
        """
        X = self._validate_for_predict(X)
        raw = self._forward(X)
        if raw.shape[1] == 1 and not self._multilabel:
            if isinstance(self._loss, LogLoss):
                log_proba = np.hstack(
                    [self._loss.log_link(-raw), self._loss.log_link(raw)]
                )
            else:
                proba = self._loss.link(raw)
                tiny = np.finfo(proba.dtype).tiny
                log_proba = np.log(np.maximum(np.hstack([1 - proba, proba]), tiny))
        else:
            log_proba = self._loss.log_link(raw)
        floor = np.log(np.finfo(log_proba.dtype).tiny)
        return np.maximum(log_proba, floor, out=log_proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

"""A plain PyTorch training loop on CPU: the competitor a user would otherwise write.

The same work as our estimator's ``fit`` on a :class:`~workloads.Workload`:

- the same network (``nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU``), in
  the data's dtype;
- the same initial weights: drawn by our own initialiser
  (``sklearn_bp._network.init_params``, MLP's Glorot-uniform draw) from
  ``check_random_state(random_state)``, as ``fit`` draws them;
- the same shuffles: ``fit`` goes on drawing from that generator after the
  weights, each epoch permuting the previous order (MLP's rule); the loop does
  the same with numpy and indexes the torch tensors with the result;
- the same loss (softmax cross-entropy, binary cross-entropy on one logit,
  half squared error), batch size, and ``torch.optim.Adam`` / ``SGD`` with
  equal hyper-parameters (ours follow ``torch.optim`` exactly);
- a plain loop: the data are two preallocated tensors sharing the numpy arrays'
  memory, each batch is gathered into a preallocated buffer with
  ``index_select(out=...)``; no DataLoader, no per-batch validation.

The thread count is set with ``torch.set_num_threads`` by the caller (the BLAS
threads of the run). torch is imported only by :func:`import_torch`, so that a
run without it, or one that never reaches the torch rows, loads nothing of it.
"""

import numpy as np
from sklearn.utils import check_random_state, gen_batches


def import_torch():
    """``(torch, None)``, or ``(None, message)`` when torch cannot be imported."""
    try:
        import torch
    except ImportError as exc:
        return None, (
            f"torch is not installed ({exc}); the PyTorch columns are skipped. "
            "Install the CPU wheel (pip install torch --index-url "
            "https://download.pytorch.org/whl/cpu) to measure them."
        )
    return torch, None


def initial_params(hidden_layer_sizes, n_features, n_outputs, random_state, dtype):
    """The initial ``(coefs, intercepts)`` ``fit`` draws, and the generator
    after the draw (which ``fit`` goes on to shuffle with).

    Valid for the benchmark's settings: ReLU, the default ``weight_init``, no
    held-out split and no dropout (either would draw from the generator before
    the first shuffle).
    """
    from sklearn_bp._network import init_params
    from sklearn_bp.activations import get_activation

    rng = check_random_state(random_state)
    units = [n_features, *hidden_layer_sizes, n_outputs]
    coefs, intercepts = init_params(units, get_activation("relu"), rng, dtype)
    return coefs, intercepts, rng


class TorchLoop:
    """Train the workload's network with a plain torch loop.

    Parameters
    ----------
    workload : Workload
        Architecture, optimizer, learning rate, batch size, task. Rows with an
        L2 penalty (``alpha``), dropout or a sparse ``X`` are not supported.
    X : ndarray of shape (n_samples, n_features)
        Dense, float32 or float64; shared with the tensors, not copied.
    y : ndarray of shape (n_samples,)
        Class labels (classification) or targets (regression).
    torch : module
        The imported ``torch``.
    random_state : int, default=0
        As the estimators' (the workloads use 0).
    """

    def __init__(self, workload, X, y, torch, random_state=0):
        if workload.alpha or workload.ours_params:
            raise ValueError(
                f"{workload.name}: the torch loop has no L2 penalty or dropout; "
                "only rows without them are compared."
            )
        self.w = workload
        self.torch = torch
        self.random_state = random_state
        self.dtype = X.dtype
        X = np.ascontiguousarray(X)
        self.X = torch.from_numpy(X)
        if workload.task == "classification":
            classes, codes = np.unique(y, return_inverse=True)
            if len(classes) > 2:
                self.n_outputs = len(classes)
                self.y = torch.from_numpy(codes.astype(np.int64))
            else:  # one logit, as ours and MLP (LabelBinarizer's one column)
                self.n_outputs = 1
                self.y = torch.from_numpy(codes.astype(X.dtype)[:, None])
        else:
            self.n_outputs = 1
            self.y = torch.from_numpy(np.asarray(y, dtype=X.dtype).reshape(-1, 1))
        bs = min(workload.batch_size, X.shape[0])
        self.Xb = torch.empty((bs, X.shape[1]), dtype=self.X.dtype)
        self.yb = torch.empty((bs, *self.y.shape[1:]), dtype=self.y.dtype)

    def _model(self, coefs, intercepts):
        nn = self.torch.nn
        modules = []
        for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
            layer = nn.Linear(*W.shape, dtype=self.X.dtype)
            with self.torch.no_grad():
                layer.weight.copy_(self.torch.from_numpy(np.ascontiguousarray(W.T)))
                layer.bias.copy_(self.torch.from_numpy(b))
            modules.append(layer)
            if i < len(coefs) - 1:
                modules.append(nn.ReLU())
        return nn.Sequential(*modules)

    def _optimizer(self, params):
        optim, w = self.torch.optim, self.w
        if w.optimizer == "adam":
            return optim.Adam(
                params, lr=w.learning_rate_init, betas=(0.9, 0.999), eps=1e-8
            )
        if w.optimizer == "sgd":  # the workloads' Nesterov momentum 0.9
            return optim.SGD(
                params, lr=w.learning_rate_init, momentum=0.9, nesterov=True
            )
        if w.optimizer == "plain sgd":
            return optim.SGD(params, lr=w.learning_rate_init, momentum=0.0)
        raise ValueError(f"{w.name}: no torch loop for optimizer={w.optimizer!r}")

    def _loss(self):
        F = self.torch.nn.functional
        if self.w.task == "regression":
            return lambda out, target: 0.5 * F.mse_loss(out, target)
        if self.n_outputs == 1:
            return F.binary_cross_entropy_with_logits
        return F.cross_entropy

    def fit(self, epochs):
        """Draw the initial weights and train ``epochs`` epochs; the model.

        Everything ``fit`` does per call is inside: the weight draw, the
        shuffles, the model and optimizer set-up and the loop.
        """
        torch = self.torch
        n_samples = self.X.shape[0]
        coefs, intercepts, rng = initial_params(
            self.w.hidden_layer_sizes,
            self.X.shape[1],
            self.n_outputs,
            self.random_state,
            self.dtype,
        )
        model = self._model(coefs, intercepts)
        optimizer = self._optimizer(model.parameters())
        loss_fn = self._loss()
        batches = list(gen_batches(n_samples, self.Xb.shape[0]))
        order = np.arange(n_samples)
        for _ in range(epochs):
            order = order[rng.permutation(n_samples)]
            order_t = torch.from_numpy(order)
            for rows in batches:
                idx = order_t[rows]
                m = idx.shape[0]
                Xb = torch.index_select(self.X, 0, idx, out=self.Xb[:m])
                yb = torch.index_select(self.y, 0, idx, out=self.yb[:m])
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(Xb), yb)
                loss.backward()
                optimizer.step()
        return model


def model_params(model):
    """A torch model's ``(coefs, intercepts)`` in our layout (``W`` is
    ``(fan_in, fan_out)``), as numpy arrays."""
    linear = [m for m in model if hasattr(m, "weight")]
    coefs = [m.weight.detach().numpy().T for m in linear]
    intercepts = [m.bias.detach().numpy() for m in linear]
    return coefs, intercepts


def max_abs_difference(est, model):
    """Largest absolute difference between an estimator's fitted parameters
    and a torch model's."""
    coefs, intercepts = model_params(model)
    return max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(
            [*est.coefs_, *est.intercepts_], [*coefs, *intercepts], strict=True
        )
    )

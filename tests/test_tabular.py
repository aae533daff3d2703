"""Numerical embeddings and TabM ensembles against their reference
implementations (``rtdl_num_embeddings``, ``tabm``), finite differences, and
the estimators' behaviour with them."""

import numpy as np
import pytest
from _helpers import central_differences, quiet_fit
from sklearn.datasets import load_digits, make_regression

from sklearn_bp import BackpropClassifier, BackpropRegressor, _tabular
from sklearn_bp._init import glorot_uniform
from sklearn_bp._network import Layer, glorot_factors
from sklearn_bp.activations import get_activation
from sklearn_bp.embeddings import PeriodicEmbedding, PiecewiseLinearEmbedding
from sklearn_bp.losses import SquaredError
from sklearn_bp.optimizers import Adam

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

EMBEDDINGS = {
    None: None,
    "periodic": PeriodicEmbedding(n_frequencies=3, d_embedding=4,
                                  frequency_init_scale=0.3),
    "periodic-lite": PeriodicEmbedding(n_frequencies=3, d_embedding=4, lite=True,
                                       frequency_init_scale=0.3),
    "ple-B": PiecewiseLinearEmbedding(n_bins=4, d_embedding=3),
    "ple-A-relu": PiecewiseLinearEmbedding(n_bins=4, d_embedding=3, version="A",
                                           activation=True),
}
ENSEMBLES = {"k1": (1, False), "tabm": (3, False), "tabm-mini": (3, True)}


_quiet_fit = quiet_fit


def _problem(embedding, ensemble, seed=0, n=9, n_features=3, hidden=(5, 4),
             activation="tanh", n_outputs=2):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    Y = rng.normal(size=(n, n_outputs))
    k, mini = ENSEMBLES[ensemble]
    net = _tabular.make_net(EMBEDDINGS[embedding], X, k, mini, len(hidden))
    layers = [Layer(get_activation(activation)) for _ in hidden]
    units = [net.n_inputs, *hidden, n_outputs]
    params = _tabular.init_params(net, units, glorot_uniform,
                                  glorot_factors(layers, len(units) - 1), rng,
                                  np.float64)
    _, _, emb, r, s = net.split(params)
    # non-trivial adapters and embedding weights (some start at 0 or 1)
    for p in list(emb.values()) + list(r) + list(s):
        p += rng.normal(scale=0.3, size=p.shape)
    return net, params, X, Y, layers


def _loss(net, params, X, Y, layers, sw=None, alpha=0.01):
    grads = [np.zeros_like(p) for p in params]
    value = _tabular.loss_and_gradients(net, params, X, Y, sw, layers, SquaredError(),
                                        alpha, grads)
    return value, grads


@pytest.mark.parametrize("ensemble", sorted(ENSEMBLES))
@pytest.mark.parametrize("embedding", [e for e in EMBEDDINGS if e is not None])
def test_gradients_match_central_differences(embedding, ensemble):
    net, params, X, Y, layers = _problem(embedding, ensemble)
    sw = np.random.RandomState(1).uniform(0.5, 2.0, X.shape[0])
    _, grads = _loss(net, params, X, Y, layers, sw)
    numeric = central_differences(lambda: _loss(net, params, X, Y, layers, sw)[0],
                                  params)
    for g, expected in zip(grads, numeric, strict=True):
        np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("ensemble", ["tabm", "tabm-mini"])
def test_ensemble_gradients_without_embedding_match_differences(ensemble):
    net, params, X, Y, layers = _problem(None, ensemble)
    _, grads = _loss(net, params, X, Y, layers)
    h = 1e-6
    for p, g in zip(params, grads, strict=True):
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in range(0, flat.size, max(1, flat.size // 7)):
            saved = flat[i]
            flat[i] = saved + h
            plus = _loss(net, params, X, Y, layers)[0]
            flat[i] = saved - h
            minus = _loss(net, params, X, Y, layers)[0]
            flat[i] = saved
            assert gflat[i] == pytest.approx((plus - minus) / (2 * h), rel=1e-5,
                                             abs=1e-8)


@pytest.mark.parametrize("ensemble", sorted(ENSEMBLES))
def test_reused_scratch_arrays_give_the_same_results(ensemble):
    # the training step reuses its arrays from batch to batch, and batches
    # shrink at the end of an epoch: results equal fresh arrays', bit for bit
    net, params, X, Y, layers = _problem("periodic", ensemble, n=12)
    scratch = _tabular.Scratch()
    for rows in (slice(0, 12), slice(0, 5), slice(3, 12)):
        fresh = [np.zeros_like(p) for p in params]
        reused = [np.zeros_like(p) for p in params]
        a = _tabular.loss_and_gradients(net, params, X[rows], Y[rows], None, layers,
                                        SquaredError(), 0.01, fresh)
        b = _tabular.loss_and_gradients(net, params, X[rows], Y[rows], None, layers,
                                        SquaredError(), 0.01, reused, scratch=scratch)
        assert a == b
        for g, h in zip(fresh, reused, strict=True):
            np.testing.assert_array_equal(g, h)


# -- the reference implementations ------------------------------------------------


def _t(a):
    return torch.tensor(np.ascontiguousarray(a), dtype=torch.float64)


def _reference_embedding(spec, net, emb):
    rtdl = pytest.importorskip("rtdl_num_embeddings")
    F = net.n_features
    if isinstance(spec, PeriodicEmbedding):
        module = rtdl.PeriodicEmbeddings(F, spec.d_embedding,
                                         n_frequencies=spec.n_frequencies,
                                         frequency_init_scale=spec.frequency_init_scale,
                                         lite=spec.lite).double()
        with torch.no_grad():
            module.periodic.weight.copy_(_t(emb["frequencies"]))
            W = emb["weight"].T if spec.lite else emb["weight"]
            module.linear.weight.copy_(_t(W))
            module.linear.bias.copy_(_t(emb["bias"]))
        return module
    bins = [_t(edges) for edges in net.state]
    # (its encoding buffers are made in the default dtype: float64 here, or
    # they would round the bins to float32)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        module = rtdl.PiecewiseLinearEmbeddings(bins, spec.d_embedding,
                                                activation=spec.activation,
                                                version=spec.version)
    finally:
        torch.set_default_dtype(default)
    with torch.no_grad():
        module.linear.weight.copy_(_t(emb["weight"]))
        if spec.version == "B":
            module.linear0.weight.copy_(_t(emb["linear_weight"]))
            module.linear0.bias.copy_(_t(emb["linear_bias"]))
        else:
            module.linear.bias.copy_(_t(emb["bias"]))
    return module


@pytest.mark.parametrize("embedding", [e for e in EMBEDDINGS if e is not None])
def test_embeddings_equal_rtdl_num_embeddings(embedding):
    spec = EMBEDDINGS[embedding]
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    X[:3] *= 4  # beyond the training range: the extrapolating components
    net = _tabular.make_net(spec, X[3:], 1, False, 1)
    emb = {key: rng.normal(scale=0.5, size=shape) for key, shape in
           spec._param_shapes(3, net.state).items()}
    E, cache = spec._forward(emb, net.state, X)
    module = _reference_embedding(spec, net, emb)
    Xt = _t(X)
    reference = module(Xt)
    np.testing.assert_allclose(E, reference.detach().numpy().reshape(len(X), -1),
                               rtol=1e-7, atol=1e-12)
    dE = rng.normal(size=E.shape)
    grads = {key: np.empty_like(value) for key, value in emb.items()}
    spec._backward(emb, net.state, cache, dE, grads)
    reference.backward(_t(dE.reshape(reference.shape)))
    named = dict(module.named_parameters())
    pairs = {"periodic": [("frequencies", "periodic.weight"),
                          ("weight", "linear.weight"), ("bias", "linear.bias")],
             "ple-B": [("weight", "linear.weight"), ("linear_weight", "linear0.weight"),
                       ("linear_bias", "linear0.bias")],
             "ple-A-relu": [("weight", "linear.weight"), ("bias", "linear.bias")]}
    pairs["periodic-lite"] = pairs["periodic"]
    for ours, theirs in pairs[embedding]:
        g = named[theirs].grad.numpy()
        if embedding == "periodic-lite" and ours == "weight":
            g = g.T
        np.testing.assert_allclose(grads[ours], g, rtol=1e-7, atol=1e-12)


def test_piecewise_linear_bins_equal_rtdl_compute_bins():
    rtdl = pytest.importorskip("rtdl_num_embeddings")
    X = np.random.RandomState(0).gamma(2.0, size=(500, 4))
    X[:, 3] = np.round(X[:, 3])  # repeated quantiles are dropped
    ours = PiecewiseLinearEmbedding(n_bins=10)._fit_state(X)
    theirs = rtdl.compute_bins(_t(X), n_bins=10)
    levels = np.linspace(0, 1, 11)
    for f, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        # ours are numpy's inverted-CDF quantiles (they honour sample weights,
        # see _fit_state); the reference interpolates: the same count and
        # ends, inner edges within one order statistic of each other
        expected = np.unique(np.quantile(X[:, f], levels, method="inverted_cdf"))
        np.testing.assert_array_equal(a, expected)
        assert a.size == b.numel() and a[0] == b[0] and a[-1] == b[-1]
        column = np.sort(X[:, f])
        rank = np.searchsorted(column, a)
        assert np.all(np.abs(rank - np.searchsorted(column, b.numpy())) <= 1)


def test_piecewise_linear_bins_weights_equal_repeated_rows():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(30, 3))
    w = rng.randint(0, 4, size=30)
    spec = PiecewiseLinearEmbedding(n_bins=7)
    weighted = spec._fit_state(X, w.astype(float))
    repeated = spec._fit_state(np.repeat(X, w, axis=0))
    for a, b in zip(weighted, repeated, strict=True):
        np.testing.assert_array_equal(a, b)


def _reference_tabm(net, params, hidden, n_outputs, embedding_module=None):
    tabm = pytest.importorskip("tabm")
    model = tabm.TabM(
        n_num_features=net.n_features, d_out=n_outputs, n_blocks=len(hidden),
        d_block=hidden[0], dropout=0.0, activation="Tanh", k=net.k,
        arch_type="tabm-mini" if net.mini else "tabm",
        start_scaling_init="random-signs" if embedding_module is None else "normal",
        num_embeddings=embedding_module,
    ).double()
    coefs, intercepts, _, r, s = net.split(params)
    with torch.no_grad():
        for i, block in enumerate(model.backbone.blocks):
            linear = block[0]
            linear.weight.copy_(_t(coefs[i].T))
            linear.bias.copy_(_t(intercepts[i]))
            if not net.mini:
                linear.r.copy_(_t(r[i]))
                linear.s.copy_(_t(s[i]))
        if net.mini:
            model.backbone.affine.weight.copy_(_t(r[0]))
        model.output.weight.copy_(_t(coefs[-1]))
        model.output.bias.copy_(_t(intercepts[-1]))
    return model


@pytest.mark.parametrize("embedding", [None, "periodic", "ple-B"])
@pytest.mark.parametrize("ensemble", ["tabm", "tabm-mini"])
def test_tabm_equals_the_reference(embedding, ensemble):
    hidden = (6, 6)
    net, params, X, Y, layers = _problem(embedding, ensemble, hidden=hidden)
    module = None
    if embedding is not None:
        _, _, emb, _, _ = net.split(params)
        module = _reference_embedding(EMBEDDINGS[embedding], net, emb)
    model = _reference_tabm(net, params, hidden, Y.shape[1], module)
    raw, _ = _tabular._forward(net, params, X, layers)
    reference = model(_t(X))  # (n, k, n_outputs)
    np.testing.assert_allclose(raw, reference.detach().numpy().transpose(1, 0, 2),
                               rtol=1e-7, atol=1e-12)
    # the loss is the members' mean: 0.5 * mean of the squared errors
    value, grads = _loss(net, params, X, Y, layers, alpha=0.0)
    torch_loss = 0.5 * ((reference - _t(Y)[:, None, :]) ** 2).mean()
    assert value == pytest.approx(torch_loss.item(), rel=1e-12)
    torch_loss.backward()
    coefs, intercepts, emb, r, s = net.split(grads)
    blocks = model.backbone.blocks
    checks = [(coefs[-1], model.output.weight), (intercepts[-1], model.output.bias)]
    for i, block in enumerate(blocks):
        # (torch's weight is (fan_out, fan_in))
        checks += [(coefs[i].T, block[0].weight), (intercepts[i], block[0].bias)]
        if not net.mini:
            checks += [(r[i], block[0].r), (s[i], block[0].s)]
    if net.mini:
        checks.append((r[0], model.backbone.affine.weight))
    for ours, theirs in checks:
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-7, atol=1e-12)


def test_tabm_adam_steps_stay_equal_to_the_reference():
    hidden = (6, 6)
    net, params, X, Y, layers = _problem("periodic", "tabm", hidden=hidden)
    _, _, emb, _, _ = net.split(params)
    model = _reference_tabm(net, params, hidden, Y.shape[1],
                            _reference_embedding(EMBEDDINGS["periodic"], net, emb))
    optimizer = Adam()
    state = optimizer.init_state(params)
    torch_optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(5):
        _, grads = _loss(net, params, X, Y, layers, alpha=0.0)
        optimizer.step(params, grads, state, 0.01)
        torch_optimizer.zero_grad()
        loss = 0.5 * ((model(_t(X)) - _t(Y)[:, None, :]) ** 2).mean()
        loss.backward()
        torch_optimizer.step()
    raw, _ = _tabular._forward(net, params, X, layers)
    np.testing.assert_allclose(raw, model(_t(X)).detach().numpy().transpose(1, 0, 2),
                               rtol=1e-7, atol=1e-10)


# -- the estimators ------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300, 20:36] / 16.0, y[:300]


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(200, 5, n_targets=2, noise=1.0, random_state=0)
    return X, y / np.abs(y).max()


def test_defaults_keep_the_plain_network_bit_for_bit(digits):
    X, y = digits
    params = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    a = _quiet_fit(BackpropClassifier(**params), X, y)
    b = _quiet_fit(BackpropClassifier(**params, embedding=None, ensemble_size=1), X, y)
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_array_equal(p, q)
    assert not hasattr(b, "embedding_params_")


def test_classifier_averages_member_probabilities(digits):
    X, y = digits
    clf = _quiet_fit(BackpropClassifier(hidden_layer_sizes=(8,), ensemble_size=4,
                                        embedding="periodic", max_iter=3,
                                        random_state=0), X, y)
    members = clf.predict_proba_members(X)
    assert members.shape == (X.shape[0], 4, 10)
    np.testing.assert_allclose(clf.predict_proba(X), members.mean(axis=1), rtol=1e-10)
    np.testing.assert_array_equal(clf.predict(X),
                                  clf.classes_[members.mean(axis=1).argmax(axis=1)])
    assert clf.predict_members(X).shape == (X.shape[0], 4)
    assert clf.transform(X).shape == (X.shape[0], 4 * 8)
    assert clf.coefs_[-1].shape == (4, 8, 10)
    assert set(clf.embedding_params_) == {"frequencies", "weight", "bias"}


def test_binary_ensemble_averages_probabilities(digits):
    X, y = digits
    clf = _quiet_fit(BackpropClassifier(hidden_layer_sizes=(8,), ensemble_size=3,
                                        max_iter=3, random_state=0), X, y % 2)
    members = clf.predict_proba_members(X)
    np.testing.assert_allclose(clf.predict_proba(X), members.mean(axis=1), rtol=1e-10)


def test_regressor_members_and_mean(regression):
    X, y = regression
    reg = _quiet_fit(BackpropRegressor(hidden_layer_sizes=(8,), ensemble_size=5,
                                       ensemble_type="tabm-mini",
                                       embedding="piecewise_linear", max_iter=5,
                                       random_state=0), X, y)
    members = reg.predict_members(X)
    assert members.shape == (X.shape[0], 5, 2)
    np.testing.assert_allclose(reg.predict(X), members.mean(axis=1), rtol=1e-10)
    assert len(reg.embedding_bins_) == X.shape[1]


def test_partial_fit_equals_fit_and_warm_start_checks(digits):
    X, y = digits
    params = dict(hidden_layer_sizes=(8,), ensemble_size=3, embedding="periodic",
                  shuffle=False, max_iter=3, random_state=0)
    fitted = _quiet_fit(BackpropClassifier(**params), X, y)
    incremental = BackpropClassifier(**params)
    for _ in range(3):
        incremental.partial_fit(X, y, classes=np.unique(y))
    for a, b in zip(fitted._params(), incremental._params(), strict=True):
        np.testing.assert_array_equal(a, b)
    fitted.set_params(warm_start=True, ensemble_size=2)
    with pytest.raises(ValueError, match="ensemble_size"):
        fitted.fit(X, y)


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_lbfgs_early_stopping_float32_and_errors(Estimator, digits):
    from scipy import sparse

    X, y = digits
    est = _quiet_fit(Estimator(hidden_layer_sizes=(8,), ensemble_size=2,
                               embedding="periodic", optimizer="lbfgs", max_iter=5,
                               random_state=0), X, y)
    assert est.n_iter_ >= 1
    est = _quiet_fit(Estimator(hidden_layer_sizes=(8,), ensemble_size=2,
                               early_stopping=True, max_iter=4, random_state=0),
                     X.astype(np.float32), y)
    assert all(p.dtype == np.float32 for p in est._params())
    assert est.predict(X.astype(np.float32)).dtype in (np.float32, y.dtype)
    # sparse input is densified batch by batch: the same fit as dense input
    params = dict(hidden_layer_sizes=(8,), ensemble_size=2, max_iter=2, random_state=0,
                  embedding="piecewise_linear")
    on_sparse = _quiet_fit(Estimator(**params), sparse.csr_matrix(X), y)
    on_dense = _quiet_fit(Estimator(**params), X, y)
    for a, b in zip(on_sparse._params(), on_dense._params(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(on_sparse.predict(sparse.csr_matrix(X)),
                               on_dense.predict(X))
    with pytest.raises(ValueError, match="hidden layer"):
        Estimator(hidden_layer_sizes=(), ensemble_size=2).fit(X, y)
    with pytest.raises(ValueError, match="'embedding'"):
        Estimator(embedding="fourier").fit(X, y)
    with pytest.raises(ValueError, match="'ensemble_size'"):
        Estimator(ensemble_size=0).fit(X, y)


@pytest.mark.parametrize("kind", ["pickle", "skops"])
def test_saved_tabular_networks_predict_and_continue_identically(kind, digits):
    import pickle

    import sklearn_bp

    X, y = digits
    clf = _quiet_fit(BackpropClassifier(hidden_layer_sizes=(8,), ensemble_size=3,
                                        embedding="piecewise_linear", max_iter=3,
                                        random_state=0), X, y)
    if kind == "pickle":
        loaded = pickle.loads(pickle.dumps(clf))
    else:
        sio = pytest.importorskip("skops.io")
        loaded = sio.loads(sio.dumps(clf), trusted=sklearn_bp.TRUSTED_TYPES)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X, y)
    loaded.partial_fit(X, y)
    for a, b in zip(clf._params(), loaded._params(), strict=True):
        np.testing.assert_array_equal(a, b)

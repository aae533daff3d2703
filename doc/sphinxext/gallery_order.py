"""Order of the example gallery's cards (sphinx-gallery ``within_subsection_order``).

The executed ``plot_*.py`` examples come first, in the reading order of
:data:`ORDER` (the network's parts, then training it, then tuning and using
it, then your own components); examples not listed there follow, by file
name. Scripts the build does not run (``dask_scale_out.py`` needs a cluster,
so it has no figure) come last.
"""

from sphinx_gallery.sorting import FileNameSortKey

ORDER = (
    "plot_activations.py",
    "plot_optimizers.py",
    "plot_schedules.py",
    "plot_early_stopping.py",
    "plot_regularization.py",
    "plot_lbfgs.py",
    "plot_grid_search.py",
    "plot_robust_regression.py",
    "plot_partial_fit_stream.py",
    "plot_custom_components.py",
    "plot_custom_optimizer.py",
)


class PlotFirstSortKey(FileNameSortKey):
    """Sort key: the executed ``plot_*`` examples first, in :data:`ORDER` and
    then by name, then the others, by name."""

    def __call__(self, filename):
        name = str(filename)
        rank = ORDER.index(name) if name in ORDER else len(ORDER)
        return (not name.startswith("plot_"), rank, name)

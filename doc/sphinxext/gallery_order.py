"""Order of the example gallery's cards (sphinx-gallery ``within_subsection_order``).

The executed ``plot_*.py`` examples come first, by file name; scripts the build
does not run (``dask_scale_out.py`` needs a cluster, so it has no figure) come
after them.
"""

from sphinx_gallery.sorting import FileNameSortKey


class PlotFirstSortKey(FileNameSortKey):
    """Sort key: executed ``plot_*`` examples first, then the others, by name."""

    def __call__(self, filename):
        name = str(filename)
        return (not name.startswith("plot_"), name)

"""Sphinx configuration of the sklearn_bp documentation.

Build (warnings are errors, the gallery is executed)::

    python -m sphinx -W --keep-going -b html doc doc/_build/html

Needs the ``docs`` extra: ``pip install ".[docs]"``.
"""

import os
import re
import sys
from pathlib import Path

import sklearn_bp

DOC = Path(__file__).resolve().parent
ROOT = DOC.parent
sys.path.insert(0, str(DOC / "sphinxext"))  # gallery_order

# -- project ------------------------------------------------------------------

project = "sklearn_bp"
author = "The sklearn_bp developers"
copyright = "The sklearn_bp developers"
release = sklearn_bp.__version__
version = re.sub(r"(\d+\.\d+).*", r"\1", release)

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "sg_execution_times.rst"]
default_role = "literal"  # `x` renders as code, as in the docstrings' ``x``
root_doc = "index"

# -- API reference: autosummary + autodoc + numpydoc ---------------------------

autosummary_generate = True  # stub pages in doc/generated/ (not versioned)
autodoc_default_options = {"members": True}
autodoc_typehints = "none"  # the numpydoc sections carry the types
autodoc_inherit_docstrings = True  # ReLU.forward shows Activation.forward's text
# numpydoc's own member tables would need a stub page per method; the class
# template lists the methods with autodoc instead.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# The docstrings are checked by tests/test_docstrings.py (numpydoc.validate),
# not during the build: scikit-learn's inherited docstrings are not ours to fix.
numpydoc_validation_checks = set()

# -- intersphinx ----------------------------------------------------------------
# Links to scikit-learn, NumPy, SciPy and Python need their objects.inv
# inventories, fetched over the network at build time. The build must be clean
# with -W where there is no network (CI runners without internet access, offline
# laptops); an unreachable inventory is a warning, hence an error. So the
# mapping is only configured on request:
#
#     SKLEARN_BP_DOCS_ONLINE=1 python -m sphinx -W --keep-going -b html doc ...
#
# Offline, references such as :class:`~sklearn.pipeline.Pipeline` render as
# plain code text (no warning: the build is not nitpicky).
if os.environ.get("SKLEARN_BP_DOCS_ONLINE") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "matplotlib": ("https://matplotlib.org/stable", None),
    }
else:
    intersphinx_mapping = {}
intersphinx_timeout = 10

# -- example gallery ----------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # every plot_*.py is executed
    "ignore_pattern": r"__init__\.py",
    "doc_module": ("sklearn_bp",),
    # Mini-galleries on the API pages ("Examples using ...").
    "backreferences_dir": "generated/backreferences",
    # Links from the example code to our API pages; other projects' pages would
    # need their search index from the network (see intersphinx above).
    "reference_url": {"sklearn_bp": None},
    "remove_config_comments": True,
    "min_reported_time": 0,
    # By file name, the executed plot_* examples before the scripts the build
    # does not run (the Dask one would otherwise be the first card).
    "within_subsection_order": "gallery_order.PlotFirstSortKey",
    "abort_on_example_error": False,  # report every broken example, then fail
    "show_memory": False,
    "matplotlib_animations": False,
}

# -- HTML -----------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"sklearn_bp {release}"
html_theme_options = {
    "navbar_align": "left",
    # Short toctree titles (index.rst) keep the navbar on one row; every page
    # but the changelog is a navbar link, the changelog is under "More".
    "header_links_before_dropdown": 8,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_static_path = []
html_show_sourcelink = True
html_last_updated_fmt = None

# -- changelog --------------------------------------------------------------------
# CHANGELOG.md (Keep a Changelog) is the single source. Markdown would need an
# extra parser (myst), so the few constructs a changelog uses are translated to
# reST here; if the result is not valid reST (someone used richer Markdown), the
# page falls back to showing the file verbatim rather than breaking the build.


def _md_inline(text):
    """Markdown code spans and links of one line as reST."""
    before_ok, after_ok = set("'\"([{<-/: "), set("'\")]}>-/:.,;!? ")
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for i, part in enumerate(parts):
        if len(part) > 2 and part[0] == part[-1] == "`":
            prev = out[-1][-1:] if out else ""
            following = parts[i + 1][:1] if i + 1 < len(parts) else ""
            pre = "\\ " if prev and prev not in before_ok else ""
            post = "\\ " if following and following not in after_ok else ""
            out.append(f"{pre}``{part[1:-1]}``{post}")
        else:
            out.append(re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r"`\1 <\2>`__", part))
    return "".join(out)


def _changelog_rst(markdown):
    underline = {2: "=", 3: "-"}
    out = []
    for line in markdown.splitlines():
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            level, title = len(heading.group(1)), _md_inline(heading.group(2))
            if level == 1:
                continue  # the page's own title
            char = underline.get(level, "~")
            out += ["", title, char * len(title), ""]
        elif re.match(r"^\s*[-*]\s+", line):
            out.append(re.sub(r"^(\s*)[-*]\s+", r"\1- ", _md_inline(line)))
        else:
            out.append(_md_inline(line))
    return "\n".join(out) + "\n"


def _valid_rst(text):
    from docutils.core import publish_doctree
    from docutils.utils import SystemMessage

    try:
        publish_doctree(
            text,
            settings_overrides={
                "report_level": 5,
                "halt_level": 2,
                "warning_stream": False,
            },
        )
    except SystemMessage:
        return False
    return True


def _write_changelog(app):
    source = ROOT / "CHANGELOG.md"
    target = DOC / "generated" / "changelog.inc"
    target.parent.mkdir(exist_ok=True)
    markdown = source.read_text(encoding="utf-8")
    text = _changelog_rst(markdown)
    if not _valid_rst(text):
        text = (
            ".. literalinclude:: ../CHANGELOG.md\n   :language: markdown\n"
        )
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")


# -- performance numbers -------------------------------------------------------------
# The performance page's chart and table and the landing page's numbers are made
# from one benchmark run (doc/sphinxext/bench_results.py says which), so that
# they cannot disagree with each other or with the run.


def _write_benchmark_results(app):
    import bench_results

    bench_results.write_all()


# -- docstrings inherited from scikit-learn ------------------------------------------
# The estimator pages list the methods scikit-learn's base classes provide
# (score, set_output, the metadata-routing requests...). Their docstrings use
# :ref: labels and :term: glossary entries of scikit-learn's own site, which
# exist only through intersphinx; offline they would be "undefined label"
# warnings. Those roles are rendered as plain emphasis instead; our own
# docstrings are left alone, so a broken reference of ours still fails -W.
_FOREIGN_ROLE = re.compile(r":(?:ref|term|doc):`([^`<]*?)\s*(?:<([^`>]*)>)?`")


def _plain_foreign_roles(app, what, name, obj, options, lines):
    module = getattr(obj, "__module__", None) or ""
    if module.startswith("sklearn_bp") or intersphinx_mapping:
        return
    for i, line in enumerate(lines):
        lines[i] = _FOREIGN_ROLE.sub(
            lambda m: f"*{m.group(1).strip() or m.group(2)}*", line
        )


# -- base classes ---------------------------------------------------------------------
# Activation, Loss, Optimizer and LBFGS derive from sklearn_bp._spec.Spec, a
# private helper; "Bases: Spec" would name something a user cannot import. A
# private base of ours is replaced by its own (public) bases.


def _is_private_base(cls):
    module = getattr(cls, "__module__", "") or ""
    return module.split(".")[0] == "sklearn_bp" and any(
        part.startswith("_") for part in module.split(".")
    )


def _public_bases(app, name, obj, options, bases):
    public = []
    pending = list(bases)
    while pending:
        base = pending.pop(0)
        if _is_private_base(base):
            pending[:0] = list(base.__bases__)
        elif base not in public:
            public.append(base)
    bases[:] = public


# -- section navigation ------------------------------------------------------------
# The left sidebar lists the pages of the current top-level section (the user
# guide's chapters, the examples, the API pages). A top-level page without
# sub-pages (Getting started, FAQ, Performance...) would show an empty "Section
# Navigation" box: those pages get no left sidebar, and the text takes its room.


def _no_empty_section_nav(app, pagename, templatename, context, doctree):
    includes = app.env.toctree_includes
    parents = {}
    for parent, children in includes.items():
        for child in children:
            parents.setdefault(child, parent)
    section = pagename
    while parents.get(section) not in (None, app.config.root_doc):
        section = parents[section]
    if section in parents and not includes.get(section):
        context["sidebars"] = []


def setup(app):
    app.connect("html-page-context", _no_empty_section_nav)
    app.connect("builder-inited", _write_changelog)
    app.connect("builder-inited", _write_benchmark_results)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("autodoc-process-docstring", _plain_foreign_roles)

"""``diffinv ui``: a web app (Gradio) over the Python API for people who edit photos.

One file per tab under :mod:`diffinv.ui.tabs`, each exposing ``TAB`` (a :class:`~diffinv.ui.context.Tab`) and
listed in :mod:`diffinv.ui.registry`; the tabs hold no logic of their own beyond turning widget values into API
calls and results into widgets. :mod:`diffinv.ui.context` holds what every tab shares (the pipeline, the server
limits, each browser session's private folder); :mod:`diffinv.ui.app` builds and serves the app.
"""

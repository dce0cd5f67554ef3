"""Kubeflow Pipelines: the pipeline's stages as a KFP v2 pipeline (docs/kfp.md).

``params`` maps ``params.yaml`` to the pipeline's parameters, ``components`` wraps each stage's ``run`` as a
lightweight component and ``steps`` is what those components execute in the image; ``pipeline`` compiles the
graph, ``package`` reads a compiled one, ``local`` runs it with ``kfp.local`` and ``submit`` sends it to a
cluster with ``kfp.Client``. Only ``components``, ``pipeline``, ``local`` and ``submit`` import kfp (the
``kfp`` extra); the rest runs without it.
"""

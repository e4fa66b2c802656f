"""The similarity graph: exact kNN on the device, symmetrised, weighted by a kernel of the distance.

    graph = build_graph(z, GraphSettings(k=5))   # z: float[n, d], raw features or embeddings
    graph.n_nodes                          # n
    graph.senders, graph.receivers         # int32[n_edges], senders < receivers, each edge once
    graph.weights, graph.distances         # float32[n_edges]

The paper's code picks neighbours by cosine distance and weighs them by euclidean distance, which
is what GraphSettings() gives.

Layout: knn.py holds the device search, kernels.py the weights, settings.py the settings and their
checks, build.py assembles the edge list (`symmetrise` is host-side numpy).
"""

from llp_jax.graph.build import SimilarityGraph, build_graph, graph_from_knn, search, symmetrise
from llp_jax.graph.faiss_search import HnswSettings, knn_faiss
from llp_jax.graph.kernels import KERNELS, edge_weights
from llp_jax.graph.knn import METRICS, KnnResult, knn, pair_distances
from llp_jax.graph.settings import (
    Backend,
    GraphSettings,
    Kernel,
    Metric,
    check_graph_fits,
    check_graph_settings,
)

__all__ = [
    "KERNELS",
    "METRICS",
    "Backend",
    "GraphSettings",
    "HnswSettings",
    "Kernel",
    "KnnResult",
    "Metric",
    "SimilarityGraph",
    "build_graph",
    "check_graph_fits",
    "check_graph_settings",
    "edge_weights",
    "graph_from_knn",
    "knn",
    "knn_faiss",
    "pair_distances",
    "search",
    "symmetrise",
]

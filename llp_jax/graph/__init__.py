"""The similarity graph: exact kNN on the device, symmetrised, weighted by a kernel of the distance.

    graph = build_graph(z, k=5)            # z: float[n, d], raw features or embeddings
    graph.senders, graph.receivers         # int32[n_edges], senders < receivers, each edge once
    graph.weights, graph.distances         # float32[n_edges]

The paper's code picks neighbours by cosine distance and weighs them by euclidean distance:
build_graph(z, metric="cosine", weight_distance="euclidean").

Layout: knn.py holds the device search, kernels.py the weights, build.py assembles the edge list
(`symmetrise` is host-side numpy).
"""

from llp_jax.graph.build import SimilarityGraph, build_graph, graph_from_knn, symmetrise
from llp_jax.graph.kernels import KERNELS, edge_weights
from llp_jax.graph.knn import METRICS, KnnResult, knn, pair_distances

__all__ = [
    "KERNELS",
    "METRICS",
    "KnnResult",
    "SimilarityGraph",
    "build_graph",
    "edge_weights",
    "graph_from_knn",
    "knn",
    "pair_distances",
    "symmetrise",
]

"""The retrieval benchmark's data set: deterministic, clustered, skewed.

1,000,000 chunks (by default) with 384-dimensional unit vectors over 10,000
users. The vectors are a hierarchy, as text embeddings are: `clusters`
random unit topic centres; each document a direction near one topic
(centre + `doc_spread` x Gaussian, normalised); each chunk near its
document (document + `chunk_spread` x Gaussian, normalised). So a chunk's
nearest neighbours are first the chunks of its own document, then of its
topic, and neighbours mean something. (An isotropic blob per cluster, tried
first, makes every pair inside a cluster nearly equidistant: "nearest"
then means nothing and any index's recall is noise.) Each user writes about
a few topics; a chunk's text carries its topic's words plus common filler
words, so keyword search means something too.

Ownership is skewed on purpose: a few *probe* users own exactly 1, 10, 100,
1,000, 10,000 and 100,000 chunks (the sizes the benchmark reports on); the
rest of the chunks are spread over the other users by a seeded
log-normal draw. Probe users' topics are far from the crowd's busiest
clusters only by chance: the crowding case comes from every query landing
in clusters that thousands of other users also fill.

The same arguments always give byte-identical data, so a database loaded
once is reused across runs (a fingerprint of the arguments is stored in
`bench_meta`).
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

DIM = 384
CHUNKS_PER_DOCUMENT = 50
PROBE_SIZES = (1, 10, 100, 1000, 10_000, 100_000)


@dataclass(frozen=True)
class Spec:
    chunks: int = 1_000_000
    users: int = 10_000
    clusters: int = 1000
    # Probe users per size (the big sizes have fewer: they hold most chunks).
    probes: dict[int, int] = field(default_factory=lambda: {1: 5, 10: 5, 100: 5, 1000: 5, 10_000: 2, 100_000: 1})
    # Gaussian spreads (the noise vector has norm ~1 before scaling): cosine
    # ~0.78 between a document and its topic, ~0.89 between a chunk and its
    # document; chunks of one document ~0.8 apart, of one topic ~0.5.
    doc_spread: float = 0.8
    chunk_spread: float = 0.5
    seed: int = 20261207

    def fingerprint(self) -> str:
        raw = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    def scaled_probes(self) -> dict[int, int]:
        """Probe sizes that fit in this data set (a smoke run drops the big ones)."""
        budget = self.chunks // 2
        out: dict[int, int] = {}
        for size, count in sorted(self.probes.items()):
            if size * count <= budget:
                out[size] = count
                budget -= size * count
        return out


SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def _word(rng: np.random.Generator) -> str:
    return "".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), size=3))


@dataclass
class Plan:
    """Who owns how many chunks, about what, and the words of each topic."""

    spec: Spec
    user_ids: list[uuid.UUID]
    counts: np.ndarray  # chunks per user (index = user number)
    probe_users: dict[int, list[int]]  # size -> user numbers
    topics: list[np.ndarray]  # per user: cluster numbers
    centres: np.ndarray  # clusters x DIM, unit
    topic_words: list[list[str]]  # per cluster
    common_words: list[str]


def make_plan(spec: Spec) -> Plan:
    rng = np.random.default_rng(spec.seed)
    user_ids = [uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | n) for n in range(spec.users)]
    probes = spec.scaled_probes()
    counts = np.zeros(spec.users, dtype=np.int64)
    probe_users: dict[int, list[int]] = {}
    next_user = 0
    for size, count in probes.items():
        probe_users[size] = list(range(next_user, next_user + count))
        counts[next_user : next_user + count] = size
        next_user += count
    rest = spec.chunks - int(counts.sum())
    others = spec.users - next_user
    weights = rng.lognormal(mean=0.0, sigma=1.0, size=others)
    share = np.floor(weights / weights.sum() * rest).astype(np.int64)
    share = np.maximum(share, 1)
    # Fix the total exactly: add or take the difference from the largest.
    diff = rest - int(share.sum())
    order = np.argsort(-share)
    i = 0
    while diff != 0:
        j = order[i % others]
        step = 1 if diff > 0 else -1
        if share[j] + step >= 1:
            share[j] += step
            diff -= step
        i += 1
    counts[next_user:] = share
    centres = rng.standard_normal((spec.clusters, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # Busy clusters: topic popularity is skewed too (Zipf-like).
    popularity = 1.0 / np.arange(1, spec.clusters + 1) ** 0.8
    popularity /= popularity.sum()
    topics = []
    for n in range(spec.users):
        k = int(min(spec.clusters, max(1, round(np.log2(counts[n] + 1)))))
        topics.append(rng.choice(spec.clusters, size=k, replace=False, p=popularity))
    vocab_rng = np.random.default_rng(spec.seed + 1)
    topic_words = [[_word(vocab_rng) for _ in range(6)] for _ in range(spec.clusters)]
    common_words = [_word(vocab_rng) for _ in range(300)]
    return Plan(spec, user_ids, counts, probe_users, topics, centres, topic_words, common_words)


def vector_binary(vector: np.ndarray) -> bytes:
    """pgvector's binary wire format: int16 dim, int16 unused, float4 big-endian."""
    return struct.pack("!hh", DIM, 0) + vector.astype(">f4").tobytes()


@dataclass(frozen=True)
class ChunkRow:
    document_id: uuid.UUID
    chunk_index: int
    content: str
    embedding: bytes


def user_documents(plan: Plan, n: int) -> list[tuple[uuid.UUID, int]]:
    """(document id, chunk count) for user n; ids derived from the user's."""
    total = int(plan.counts[n])
    docs = []
    base = plan.user_ids[n].int
    for d in range((total + CHUNKS_PER_DOCUMENT - 1) // CHUNKS_PER_DOCUMENT):
        doc_id = uuid.UUID(int=(base ^ (d + 1) << 32) & (2**128 - 1))
        docs.append((doc_id, min(CHUNKS_PER_DOCUMENT, total - d * CHUNKS_PER_DOCUMENT)))
    return docs


def _unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return out


def _gaussian(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Noise vectors of norm ~1."""
    out: np.ndarray = rng.standard_normal((rows, DIM)).astype(np.float32) / np.sqrt(DIM)
    return out


def _documents_of(plan: Plan, n: int) -> tuple[np.ndarray, np.ndarray]:
    """User n's documents: (topic per document, unit direction per document)."""
    spec = plan.spec
    rng = np.random.default_rng((spec.seed, n, 1))
    count = len(user_documents(plan, n))
    topics = rng.choice(plan.topics[n], size=count)
    directions = _unit(plan.centres[topics] + spec.doc_spread * _gaussian(rng, count))
    return topics, directions


def user_chunks(plan: Plan, n: int) -> Iterator[tuple[uuid.UUID, int, str, np.ndarray]]:
    """User n's chunks: (document id, chunk index, content, unit vector)."""
    spec = plan.spec
    rng = np.random.default_rng((spec.seed, n))
    docs = user_documents(plan, n)
    total = int(plan.counts[n])
    doc_topics, directions = _documents_of(plan, n)
    per_chunk_doc = np.repeat(np.arange(len(docs)), [count for _, count in docs])
    clusters = doc_topics[per_chunk_doc]
    vectors = _unit(directions[per_chunk_doc] + spec.chunk_spread * _gaussian(rng, total))
    filler = rng.integers(0, len(plan.common_words), size=(total, 10))
    topical = rng.integers(0, 6, size=(total, 3))
    i = 0
    for doc_id, count in docs:
        for c in range(count):
            words = [plan.topic_words[clusters[i]][t] for t in topical[i]] + [plan.common_words[w] for w in filler[i]]
            yield doc_id, c, " ".join(words), vectors[i]
            i += 1


def query_vectors(plan: Plan, n: int, count: int, seed: int = 7) -> tuple[np.ndarray, list[str]]:
    """`count` query vectors and keyword queries for user n. Even ones ask
    about one of the user's own documents (a chunk-like vector near it);
    odd ones land in a popularity-weighted topic on a document nobody
    has, where the crowd's chunks are and the user's may be far."""
    spec = plan.spec
    rng = np.random.default_rng((spec.seed, n, seed))
    popularity = 1.0 / np.arange(1, spec.clusters + 1) ** 0.8
    popularity /= popularity.sum()
    doc_topics, directions = _documents_of(plan, n)
    own_docs = rng.integers(0, len(doc_topics), size=count)
    crowd = rng.choice(spec.clusters, size=count, p=popularity)
    crowd_dirs = _unit(plan.centres[crowd] + spec.doc_spread * _gaussian(rng, count))
    own = np.arange(count) % 2 == 0
    chosen = np.where(own, doc_topics[own_docs], crowd)
    anchors = np.where(own[:, None], directions[own_docs], crowd_dirs)
    vectors = _unit(anchors + spec.chunk_spread * _gaussian(rng, count))
    words = [" ".join(plan.topic_words[c][t] for t in rng.integers(0, 6, size=2)) for c in chosen]
    return vectors, words


def vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.6g}" for x in vector.tolist()) + "]"


def users_in_load_order(plan: Plan) -> list[int]:
    return list(range(plan.spec.users))


def progress(label: str, total: int) -> Callable[[int], None]:
    started = time.perf_counter()
    last = [0.0]

    def report(done: int) -> None:
        now = time.perf_counter()
        if now - last[0] < 2 and done < total:
            return
        last[0] = now
        rate = done / max(now - started, 1e-9)
        eta = (total - done) / rate if rate > 0 else 0
        print(f"  {label} {done:>10,} / {total:,}  {rate:,.0f}/s  eta {eta:,.0f} s", flush=True, file=__import__("sys").stderr)

    return report

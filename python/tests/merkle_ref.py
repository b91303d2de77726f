"""An independent, plain-Python model of SPEC §4 (hashlib only): page roots, cap roots, and
verifiers for the library's page proofs, multiproofs and range proofs. Nothing here calls
datacap, so the tests compare the library against it."""

import hashlib

PAGE_SIZE = 4096


def digest_fn(digest):
    if digest == "sha256":
        return lambda b: hashlib.sha256(b).digest()
    if digest == "blake2b256":
        return lambda b: hashlib.blake2b(b, digest_size=32).digest()
    raise ValueError(digest)


def zero_hashes(digest, n=80):
    d = digest_fn(digest)
    z = [bytes(32)]
    for _ in range(n):
        z.append(d(z[-1] + z[-1]))
    return z


def depth_of(limit):
    return max(0, (limit - 1).bit_length())


def merkleize(digest, chunks, limit):
    """SPEC §4 merkleize: depth ceil(log2(limit)), zero-chunk padding (as zero[k] subtrees)."""
    d = digest_fn(digest)
    z = zero_hashes(digest)
    depth = depth_of(limit)
    level = list(chunks)
    for h in range(depth):
        if len(level) % 2:
            level.append(z[h])
        level = [d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0] if level else z[depth]


def page_root(digest, page):
    page = bytes(page).ljust(PAGE_SIZE, b"\0")
    return merkleize(digest, [page[i:i + 32] for i in range(0, PAGE_SIZE, 32)], 128)


def size_root(size):
    return size.to_bytes(8, "little") + bytes(24)


def cap_root(digest, content, size_arg=0):
    """Root of from_bytes_sized(content, size_arg), computed from scratch."""
    size = max(size_arg, len(content), 1)
    size = -(-size // PAGE_SIZE) * PAGE_SIZE
    count = size // PAGE_SIZE
    leaves = []
    for i in range(-(-len(content) // PAGE_SIZE)):  # pages past the content are Empty
        page = content[i * PAGE_SIZE:(i + 1) * PAGE_SIZE]
        leaves.append(bytes(32) if not any(page) else page_root(digest, page))
    # Trailing Empty leaves are zero chunks: leave them to merkleize's padding.
    while leaves and leaves[-1] == bytes(32):
        leaves.pop()
    pages = merkleize(digest, leaves, max(count, 1))
    return digest_fn(digest)(size_root(size) + pages)


def verify_page_proof(proof, root, digest="sha256"):
    """Folds leaf and branch by the bits of page_index, then the size root: SPEC §4's tree,
    cap root = hash(size_root, pages_root)."""
    d = digest_fn(digest)
    size = proof.content_len
    if size == 0 or size % PAGE_SIZE or size // PAGE_SIZE > 2**32:
        return False
    count = size // PAGE_SIZE
    if proof.page_index >= count:
        return False
    depth = depth_of(count)
    branch = list(proof.branch)
    if len(branch) != depth + 1 or branch[-1] != size_root(size):
        return False
    node = bytes(proof.leaf)
    for k in range(depth):
        sibling = bytes(branch[k])
        node = d(sibling + node) if (proof.page_index >> k) & 1 else d(node + sibling)
    return d(bytes(branch[depth]) + node) == bytes(root)


def page_gindex(count, index):
    return 3 * 2 ** depth_of(count) + index


def helper_gindices(size, indices):
    """Every sibling of a node on the paths from the leaves to the root that is not itself on
    a path, deepest first (larger gindex first), as SSZ's get_helper_indices."""
    count = size // PAGE_SIZE
    leaves = [page_gindex(count, i) for i in indices]
    on_path, siblings = set(), set()
    for g in leaves:
        while g > 1:
            on_path.add(g)
            siblings.add(g ^ 1)
            g //= 2
    return sorted(siblings - on_path, reverse=True)


def verify_multiproof(proof, root, digest="sha256"):
    d = digest_fn(digest)
    size = proof.content_len
    if size == 0 or size % PAGE_SIZE:
        return False
    count = size // PAGE_SIZE
    indices = list(proof.page_indices)
    if not indices or indices != sorted(set(indices)) or indices[-1] >= count:
        return False
    helpers = helper_gindices(size, indices)
    if len(helpers) != len(proof.helpers) or len(indices) != len(proof.leaves):
        return False
    nodes = {page_gindex(count, i): bytes(h) for i, h in zip(indices, proof.leaves)}
    nodes.update({g: bytes(h) for g, h in zip(helpers, proof.helpers)})
    if nodes.get(2) != size_root(size):
        return False
    keys = sorted(nodes, reverse=True)
    pos = 0
    while pos < len(keys):
        g = keys[pos]
        if g > 1 and g ^ 1 in nodes and g // 2 not in nodes:
            nodes[g // 2] = d(nodes[g & ~1] + nodes[g | 1])
            keys.append(g // 2)
        pos += 1
    return nodes.get(1) == bytes(root)


def verify_range_proof(proof, root, digest="sha256"):
    pages = list(proof.pages.page_indices)
    if proof.length == 0 or not pages:
        return False
    first = proof.offset // PAGE_SIZE
    last = (proof.offset + proof.length - 1) // PAGE_SIZE
    if pages != list(range(first, last + 1)):
        return False
    data = bytes(proof.page_bytes)
    if len(data) != PAGE_SIZE * len(pages):
        return False
    for k, leaf in enumerate(proof.pages.leaves):
        page = data[k * PAGE_SIZE:(k + 1) * PAGE_SIZE]
        expected = bytes(32) if bytes(leaf) == bytes(32) else page_root(digest, page)
        if bytes(leaf) == bytes(32) and any(page):
            return False
        if bytes(leaf) != expected:
            return False
    return verify_multiproof(proof.pages, root, digest)

"""Proofs from the library, checked by the library's verifiers AND by the plain-Python
verifiers of merkle_ref.py (hashlib only, SPEC §4's tree shape); tampered proofs fail both."""

import random

import pytest

import datacap
import merkle_ref


def make_cap(pages=37, seed=7):
    rng = random.Random(seed)
    content = bytearray(pages * 4096)
    for i in range(pages):
        if i % 3 != 1:  # some Empty pages
            content[i * 4096:i * 4096 + 100] = rng.randbytes(100)
    return bytes(content), datacap.DataCap.from_bytes(bytes(content))


@pytest.mark.parametrize("digest", ["sha256", "blake2b256"])
@pytest.mark.parametrize("pages", [1, 2, 5, 37, 64, 65])
def test_page_proofs(digest, pages):
    content, cap = make_cap(pages)
    root = cap.hash_tree_root(digest)
    assert root == merkle_ref.cap_root(digest, content)
    for i in range(pages):
        proof = datacap.prove_page(cap, i, digest)
        assert proof.page_index == i and proof.content_len == cap.content_len
        assert len(proof.branch) == datacap.pages_depth(pages) + 1
        assert proof.leaf == cap.slot_root(i, digest)
        assert datacap.verify_page_proof(proof, root, digest)
        assert merkle_ref.verify_page_proof(proof, root, digest)
        assert datacap.page_gindex(pages, i) == merkle_ref.page_gindex(pages, i)


def test_tampered_page_proofs_fail_both_verifiers():
    _, cap = make_cap(37)
    root = cap.hash_tree_root()
    proof = datacap.prove_page(cap, 5)
    for k in range(len(proof.branch)):
        bad = datacap.PageProof(proof.content_len, proof.page_index, proof.leaf, proof.branch)
        branch = list(bad.branch)
        branch[k] = bytes([branch[k][0] ^ 1]) + branch[k][1:]
        bad.branch = branch
        assert not datacap.verify_page_proof(bad, root)
        assert not merkle_ref.verify_page_proof(bad, root)
    moved = datacap.PageProof(proof.content_len, 6, proof.leaf, proof.branch)
    assert not datacap.verify_page_proof(moved, root)
    assert not merkle_ref.verify_page_proof(moved, root)
    wrong_leaf = datacap.PageProof(proof.content_len, 5, bytes(32), proof.branch)
    assert not datacap.verify_page_proof(wrong_leaf, root)
    assert not datacap.verify_page_proof(proof, bytes(32))
    assert datacap.verify_page_proof(proof, root.hex())  # a root in hex is accepted too
    assert not datacap.verify_page_proof(proof, bytes([root[0] ^ 1]) + root[1:])


@pytest.mark.parametrize("digest", ["sha256", "blake2b256"])
def test_multiproofs(digest):
    _, cap = make_cap(70)
    root = cap.hash_tree_root(digest)
    for indices in ([0], [1, 2, 90 % 70], [0, 69], list(range(0, 70, 7)), list(range(70))):
        indices = sorted(set(indices))
        proof = datacap.prove_pages(cap, indices, digest)
        assert proof.page_indices == indices
        assert datacap.multiproof_helper_gindices(cap.content_len, indices) == \
            merkle_ref.helper_gindices(cap.content_len, indices)
        assert datacap.verify_multiproof(proof, root, digest)
        assert merkle_ref.verify_multiproof(proof, root, digest)
        if proof.helpers:
            helpers = list(proof.helpers)
            helpers[0] = bytes(32) if helpers[0] != bytes(32) else b"\1" * 32
            proof.helpers = helpers
            assert not datacap.verify_multiproof(proof, root, digest)
            assert not merkle_ref.verify_multiproof(proof, root, digest)
    with pytest.raises(datacap.InvalidArgument):
        datacap.prove_pages(cap, [3, 2])


def test_range_proofs():
    content, cap = make_cap(20)
    root = cap.hash_tree_root()
    for offset, length in [(0, 1), (4000, 300), (4096, 4096), (5 * 4096 + 7, 3 * 4096), (0, 20 * 4096)]:
        proof = datacap.prove_range(cap, offset, length)
        assert proof.bytes() == content[offset:offset + length]
        assert datacap.verify_range_proof(proof, root)
        assert merkle_ref.verify_range_proof(proof, root)
        data = bytearray(proof.page_bytes)
        data[offset % 4096] ^= 0x80
        proof.page_bytes = bytes(data)
        assert not datacap.verify_range_proof(proof, root)
        assert not merkle_ref.verify_range_proof(proof, root)
    with pytest.raises(datacap.InvalidArgument):
        datacap.prove_range(cap, 0, 0)
    with pytest.raises(datacap.OutOfRange):
        datacap.prove_range(cap, cap.content_len - 1, 2)


def test_proofs_need_a_clean_cap():
    _, cap = make_cap(4)
    cap.write(0, b"dirty")
    with pytest.raises(datacap.DirtyCap):
        datacap.prove_page(cap, 0)
    with pytest.raises(datacap.DirtyCap):
        datacap.diff_pages(cap, cap)


def test_missing_pages_are_proven_by_their_hash():
    _, cap = make_cap(8)
    root = cap.hash_tree_root()
    light = cap.copy()
    light.elide_pages([0, 2])
    assert light.missing_pages() == [0, 2]
    assert light.hash_tree_root() == root
    proof = datacap.prove_page(light, 2)
    assert merkle_ref.verify_page_proof(proof, root)
    with pytest.raises(datacap.MissingPage):
        datacap.prove_range(light, 2 * 4096, 10)


def test_diff_pages():
    _, a = make_cap(100)
    b = a.copy()
    b.write(5 * 4096 + 3, b"x")
    b.write(77 * 4096, b"y" * 4097)
    b = b.flush()
    assert datacap.diff_pages(a, b) == [5, 77, 78]
    assert datacap.diff_pages(a, a.copy()) == []
    bigger = datacap.DataCap.zeroed(200 * 4096)
    bigger.place_shared(0, a)
    assert datacap.diff_pages(a, bigger) == []

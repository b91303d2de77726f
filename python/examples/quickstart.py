import tempfile

import datacap

# A 1 MiB program image: clean, zero pages Empty, with a content identity.
image = datacap.DataCap.from_bytes(b"\x7fELF program bytes", target=1 << 20)
print("image root:", image.hash_tree_root().hex())

vm = image.copy()                     # MGMT_COPY: O(1), shares every page
vm.write(0x1234, b"hello, world")     # copy on write: image is unchanged
vm = vm.flush()                       # fold the overlay into a new clean cap
page = vm.page_at(0x1000)             # read-only view of the page itself, no copy
print("page 1 starts:", bytes(page[0x234:0x240]))
print("changed pages:", datacap.diff_pages(image, vm))

root = vm.hash_tree_root()
proof = datacap.prove_page(vm, 1)
print("proof verifies:", datacap.verify_page_proof(proof, root))

with tempfile.TemporaryDirectory() as tmp:
    datacap.write_archive(vm, f"{tmp}/vm.dcar")
    assert datacap.open_archive(f"{tmp}/vm.dcar").hash_tree_root() == root
    with datacap.LmdbStore(f"{tmp}/caps.db") as store:
        assert store.load_cap(store.save_cap(vm)).hash_tree_root() == root
print("archive and store round trips: ok")

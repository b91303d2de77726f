"""datacap: copy-on-write paged memory with merkle roots for deterministic VMs.

A DataCap is a VM's memory object: whole 4 KiB pages, an immutable backing shared by reference
count and a private copy-on-write overlay. copy() is O(1); a flushed cap has a content identity,
hash_tree_root(), identical on every machine (SHA-256 or BLAKE2b-256). A page may be Missing:
known only by its hash, and never silently read as zeros.

    import datacap
    cap = datacap.DataCap.from_bytes(b"hello", target=1 << 20)
    root = cap.hash_tree_root()          # 32 bytes
    vm = cap.copy()                      # O(1)
    vm.write(0x1000, b"world")           # copy on write: cap is unchanged
    vm = vm.flush()
    page = vm.page_at(0x1000)            # read-only memoryview of the page, no copy

Errors are subclasses of datacap.Error, one per kind of the C++ library (InvalidArgument and
its OutOfRange, MemoryLimitExceeded and DirtyCap, MissingPage, DecodeError, ValidationError,
IoError, IntegrityError, NotFound). Calls that hash, pack, store or copy more than a page
release the GIL.

The compiled part is datacap._datacap; everything public is re-exported here.
"""

from ._datacap import (
    DIGESTS,
    GROUP_PAGES,
    MAX_PAGE_COUNT,
    PAGE_SIZE,
    ArchiveInfo,
    ArenaPageRef,
    DataCap,
    DataDesc,
    DecodeError,
    DirtyCap,
    Error,
    GcReport,
    HydrateReport,
    ImageBuilder,
    ImageMemory,
    IntegrityError,
    InvalidArgument,
    IoError,
    LmdbStore,
    MemoryLimitExceeded,
    MemoryStore,
    MissingPage,
    MultiProof,
    NotFound,
    Unsupported,
    OutOfRange,
    PageBuffer,
    PageProof,
    PageStore,
    RangeProof,
    SavedCap,
    StoreProblem,
    StoreVerifyReport,
    ValidationError,
    __version__,
    active_isa,
    archive_info,
    available_isas,
    diff_pages,
    hash_pair,
    hash_threads,
    hydrate,
    is_archive_file,
    live_page_count,
    multiproof_helper_gindices,
    open_archive,
    page_gindex,
    page_root,
    pages_depth,
    prove_page,
    prove_pages,
    prove_range,
    read_raw_file,
    set_hash_threads,
    set_isa,
    size_root,
    verify_archive,
    verify_multiproof,
    verify_page_proof,
    verify_range_proof,
    write_archive,
)

__all__ = [
    "DIGESTS",
    "GROUP_PAGES",
    "MAX_PAGE_COUNT",
    "PAGE_SIZE",
    "ArchiveInfo",
    "ArenaPageRef",
    "DataCap",
    "DataDesc",
    "DecodeError",
    "DirtyCap",
    "Error",
    "GcReport",
    "HydrateReport",
    "ImageBuilder",
    "ImageMemory",
    "IntegrityError",
    "InvalidArgument",
    "IoError",
    "LmdbStore",
    "MemoryLimitExceeded",
    "MemoryStore",
    "MissingPage",
    "MultiProof",
    "NotFound",
    "Unsupported",
    "OutOfRange",
    "PageBuffer",
    "PageProof",
    "PageStore",
    "RangeProof",
    "SavedCap",
    "StoreProblem",
    "StoreVerifyReport",
    "ValidationError",
    "__version__",
    "active_isa",
    "archive_info",
    "available_isas",
    "diff_pages",
    "hash_pair",
    "hash_threads",
    "hydrate",
    "is_archive_file",
    "live_page_count",
    "multiproof_helper_gindices",
    "open_archive",
    "page_gindex",
    "page_root",
    "pages_depth",
    "prove_page",
    "prove_pages",
    "prove_range",
    "read_raw_file",
    "set_hash_threads",
    "set_isa",
    "size_root",
    "verify_archive",
    "verify_multiproof",
    "verify_page_proof",
    "verify_range_proof",
    "write_archive",
]

# The classes defined in C++ say they live in `datacap`, where users meet them.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and getattr(_obj, "__module__", None) == "datacap._datacap":
        try:
            _obj.__module__ = "datacap"
        except (AttributeError, TypeError):
            pass
del _name, _obj

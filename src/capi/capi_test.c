/* The C API's test program, compiled as C11 (-pedantic) and linked to the shared library as a C
 * engine would be. It calls every function of datacap.h: results against the C++ semantics and
 * the SPEC's vectors, every error status with its message, and NULL for every pointer.
 *
 * Usage: datacap_capi_test VECTORS_DIR      (exit 0 when every check passes) */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, nftw-free cleanup with opendir */

#include <datacap/datacap.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

/* The call returned `status` and its message contains `needle`. */
#define CHECK_FAILS(call, status, needle) check_fails((call), (status), (needle), __LINE__, #call)

static void check_fails(datacap_status got, datacap_status want, const char* needle, int line,
                        const char* call) {
  char* message = datacap_error_message();
  if (got != want) {
    fprintf(stderr, "%s:%d: %s gave %s, expected %s (%s)\n", __FILE__, line, call,
            datacap_status_name(got), datacap_status_name(want), message ? message : "no message");
    ++failures;
  } else if (message == NULL || strstr(message, needle) == NULL) {
    fprintf(stderr, "%s:%d: %s: message \"%s\" lacks \"%s\"\n", __FILE__, line, call,
            message ? message : "(null)", needle);
    ++failures;
  }
  datacap_free(message);
}

#define OK(call) CHECK((call) == DATACAP_OK)

static int hash_is_hex(const datacap_hash* hash, const char* hex) {
  char text[65];
  datacap_hash_to_hex(hash, text);
  return strcmp(text, hex) == 0;
}

static int hashes_equal(const datacap_hash* a, const datacap_hash* b) {
  return memcmp(a->bytes, b->bytes, 32) == 0;
}

static datacap_hash root_of(const datacap_cap* cap) {
  datacap_hash root;
  memset(&root, 0, sizeof root);
  OK(datacap_cap_root(cap, DATACAP_SHA256, &root));
  return root;
}

/* ---- basics ------------------------------------------------------------------------------ */
static void test_basics(void) {
  char* message = datacap_error_message();
  CHECK(message == NULL); /* nothing has failed on this thread yet */
  datacap_free(NULL);

  CHECK(strcmp(datacap_version(), "") != 0 && strchr(datacap_version(), '.') != NULL);
  CHECK(strcmp(datacap_status_name(DATACAP_OK), "ok") == 0);
  CHECK(strcmp(datacap_status_name(DATACAP_INVALID_ARGUMENT), "invalid_argument") == 0);
  CHECK(strcmp(datacap_status_name(DATACAP_OUT_OF_RANGE), "out_of_range") == 0);
  CHECK(strcmp(datacap_status_name(DATACAP_DIRTY_CAP), "dirty_cap") == 0);
  CHECK(strcmp(datacap_status_name(DATACAP_MISSING_PAGE), "missing_page") == 0);
  CHECK(strcmp(datacap_status_name(DATACAP_DECODE), "decode") == 0);
  CHECK(strcmp(datacap_status_name(DATACAP_VALIDATION), "validation") == 0);
  CHECK(strcmp(datacap_status_name(DATACAP_IO), "io") == 0);
  CHECK(strcmp(datacap_status_name(DATACAP_INTEGRITY), "integrity") == 0);
  CHECK(strcmp(datacap_status_name(DATACAP_NOT_FOUND), "not_found") == 0);
  CHECK(strcmp(datacap_status_name(DATACAP_OUT_OF_MEMORY), "out_of_memory") == 0);
  CHECK(strcmp(datacap_status_name(DATACAP_INTERNAL), "internal") == 0);
  CHECK(strcmp(datacap_status_name(DATACAP_UNSUPPORTED), "unsupported") == 0);
  CHECK(strcmp(datacap_status_name((datacap_status)99), "unknown") == 0);
  CHECK(strcmp(datacap_status_name((datacap_status)-1), "unknown") == 0);

  datacap_hash hash;
  const char* hex = "C586E42B289729E1B2B732A06A085910C0B19378B66B8DC1BDE2CF86B87572A6";
  OK(datacap_hash_from_hex(hex, &hash));
  CHECK(hash_is_hex(&hash, "c586e42b289729e1b2b732a06a085910c0b19378b66b8dc1bde2cf86b87572a6"));
  CHECK_FAILS(datacap_hash_from_hex("c586", &hash), DATACAP_INVALID_ARGUMENT, "64");
  CHECK_FAILS(datacap_hash_from_hex(NULL, &hash), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_hash_from_hex(hex, NULL), DATACAP_INVALID_ARGUMENT, "NULL");
  datacap_hash_to_hex(NULL, NULL); /* does nothing */

  /* The SPEC's page roots (PAGE_ROOTS.tsv): "hello" and a page of 0xff. */
  datacap_hash page_root;
  OK(datacap_page_root((const uint8_t*)"hello", 5, DATACAP_SHA256, &page_root));
  CHECK(
      hash_is_hex(&page_root, "c586e42b289729e1b2b732a06a085910c0b19378b66b8dc1bde2cf86b87572a6"));
  uint8_t ff[DATACAP_PAGE_SIZE + 1];
  memset(ff, 0xff, sizeof ff);
  OK(datacap_page_root(ff, DATACAP_PAGE_SIZE, DATACAP_SHA256, &page_root));
  CHECK(
      hash_is_hex(&page_root, "8f711e9197bcd96314b8d20425eac7dce4aee7c9a0579e901d636d3256db3672"));
  CHECK_FAILS(datacap_page_root(ff, sizeof ff, DATACAP_SHA256, &page_root), DATACAP_OUT_OF_RANGE,
              "4097");
  CHECK_FAILS(datacap_page_root(NULL, 1, DATACAP_SHA256, &page_root), DATACAP_INVALID_ARGUMENT,
              "datacap_page_root");
  CHECK_FAILS(datacap_page_root(ff, 1, (datacap_digest)7, &page_root), DATACAP_INVALID_ARGUMENT,
              "datacap_digest 7");
  OK(datacap_page_root(NULL, 0, DATACAP_BLAKE2B256, &page_root)); /* (NULL, 0): empty range */

  OK(datacap_set_hash_threads(2));
  OK(datacap_set_hash_threads(0));
}

/* ---- the SPEC's vectors through the C API ------------------------------------------------ */
static uint8_t* read_file(const char* path, size_t* len) {
  FILE* file = fopen(path, "rb");
  if (file == NULL) return NULL;
  size_t size = 0, capacity = 1;
  uint8_t* data = malloc(capacity);
  for (;;) {
    if (size == capacity) {
      capacity *= 2;
      data = realloc(data, capacity);
    }
    const size_t got = fread(data + size, 1, capacity - size, file);
    if (got == 0) break;
    size += got;
  }
  fclose(file);
  *len = size;
  return data;
}

static void test_vectors(const char* dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/MANIFEST.tsv", dir);
  FILE* manifest = fopen(path, "r");
  CHECK(manifest != NULL);
  if (manifest == NULL) return;
  char line[1024];
  int rows = 0;
  while (fgets(line, sizeof line, manifest) != NULL) {
    if (line[0] == '#' || line[0] == '\n') continue;
    char name[256], sha[65], blake[65];
    unsigned long long size_arg = 0;
    if (sscanf(line, "%255s %llu %64s %64s", name, &size_arg, sha, blake) != 4) {
      CHECK(!"malformed MANIFEST.tsv row");
      continue;
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len = 0;
    uint8_t* content = read_file(path, &len);
    CHECK(content != NULL);
    datacap_cap* cap = NULL;
    OK(datacap_cap_new_from_bytes(content, len, size_arg, &cap));
    datacap_hash root;
    OK(datacap_cap_root(cap, DATACAP_SHA256, &root));
    if (!hash_is_hex(&root, sha)) fprintf(stderr, "vector %s: wrong sha256 root\n", name);
    CHECK(hash_is_hex(&root, sha));
    OK(datacap_cap_root(cap, DATACAP_BLAKE2B256, &root));
    if (!hash_is_hex(&root, blake)) fprintf(stderr, "vector %s: wrong blake2b root\n", name);
    CHECK(hash_is_hex(&root, blake));
    datacap_cap_free(cap);
    free(content);
    ++rows;
  }
  fclose(manifest);
  CHECK(rows >= 12);
  printf("capi_test: %d vectors checked\n", rows);
}

/* ---- caps -------------------------------------------------------------------------------- */
static void test_caps(void) {
  datacap_cap* cap = NULL;
  CHECK_FAILS(datacap_cap_new_zeroed(100, &cap), DATACAP_INVALID_ARGUMENT, "100");
  CHECK(cap == NULL); /* outputs untouched on failure */
  CHECK_FAILS(datacap_cap_new_zeroed((uint64_t)1 << 45, &cap), DATACAP_OUT_OF_RANGE, "");
  CHECK_FAILS(datacap_cap_new_zeroed(4096, NULL), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_cap_new_from_bytes(NULL, 5, 0, &cap), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_cap_new_from_bytes((const uint8_t*)"x", 1, (uint64_t)1 << 46, &cap),
              DATACAP_OUT_OF_RANGE, "");

  /* NULL handles: accessors give 0, calls give INVALID_ARGUMENT, frees do nothing. */
  CHECK(datacap_cap_content_len(NULL) == 0 && datacap_cap_page_count(NULL) == 0);
  CHECK(datacap_cap_dirty_page_count(NULL) == 0 && !datacap_cap_is_clean(NULL));
  CHECK(!datacap_cap_is_dirty(NULL, 0));
  datacap_cap_free(NULL);
  datacap_page page;
  CHECK_FAILS(datacap_cap_page_at(NULL, 0, &page), DATACAP_INVALID_ARGUMENT, "page_at");
  CHECK_FAILS(datacap_cap_write(NULL, 0, (const uint8_t*)"x", 1), DATACAP_INVALID_ARGUMENT,
              "write");
  CHECK_FAILS(datacap_cap_flush(NULL), DATACAP_INVALID_ARGUMENT, "flush");
  CHECK_FAILS(datacap_cap_copy(NULL, &cap), DATACAP_INVALID_ARGUMENT, "copy");
  CHECK_FAILS(datacap_cap_root(NULL, DATACAP_SHA256, NULL), DATACAP_INVALID_ARGUMENT, "root");

  uint8_t ff[DATACAP_PAGE_SIZE + 1];
  memset(ff, 0xff, sizeof ff);
  /* Three pages: "hello" at 0, a page of 0xff at 4096, zeros after. */
  uint8_t content[2 * DATACAP_PAGE_SIZE];
  memset(content, 0, sizeof content);
  memcpy(content, "hello", 5);
  memset(content + DATACAP_PAGE_SIZE, 0xff, DATACAP_PAGE_SIZE);
  OK(datacap_cap_new_from_bytes(content, sizeof content, 3 * DATACAP_PAGE_SIZE, &cap));
  CHECK(datacap_cap_content_len(cap) == 3 * DATACAP_PAGE_SIZE);
  CHECK(datacap_cap_page_count(cap) == 3);
  CHECK(datacap_cap_is_clean(cap) && datacap_cap_dirty_page_count(cap) == 0);
  const datacap_hash original_root = root_of(cap);

  /* The same cap from sparse pages. */
  datacap_sparse_page sparse[2] = {{1, content + DATACAP_PAGE_SIZE, DATACAP_PAGE_SIZE},
                                   {0, (const uint8_t*)"hello", 5}};
  datacap_cap* from_sparse = NULL;
  OK(datacap_cap_new_from_sparse_pages(3 * DATACAP_PAGE_SIZE, sparse, 2, &from_sparse));
  datacap_hash sparse_root = root_of(from_sparse);
  CHECK(hashes_equal(&sparse_root, &original_root));
  datacap_cap_free(from_sparse);
  datacap_sparse_page twice[2] = {{0, (const uint8_t*)"a", 1}, {0, (const uint8_t*)"b", 1}};
  CHECK_FAILS(datacap_cap_new_from_sparse_pages(DATACAP_PAGE_SIZE, twice, 2, &from_sparse),
              DATACAP_INVALID_ARGUMENT, "");
  datacap_sparse_page past[1] = {{5, (const uint8_t*)"a", 1}};
  CHECK_FAILS(datacap_cap_new_from_sparse_pages(DATACAP_PAGE_SIZE, past, 1, &from_sparse),
              DATACAP_OUT_OF_RANGE, "");
  datacap_sparse_page null_bytes[1] = {{0, NULL, 3}};
  CHECK_FAILS(datacap_cap_new_from_sparse_pages(DATACAP_PAGE_SIZE, null_bytes, 1, &from_sparse),
              DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_cap_new_from_sparse_pages(DATACAP_PAGE_SIZE, NULL, 1, &from_sparse),
              DATACAP_INVALID_ARGUMENT, "NULL");

  /* page_at: kinds, page index, aligned borrowed bytes. */
  OK(datacap_cap_page_at(cap, 4, &page));
  CHECK(page.kind == DATACAP_PAGE_BYTES && page.page_index == 0);
  CHECK(((uintptr_t)page.data % DATACAP_PAGE_SIZE) == 0 && memcmp(page.data, "hello", 5) == 0);
  OK(datacap_cap_page_at(cap, 2 * DATACAP_PAGE_SIZE + 17, &page));
  CHECK(page.kind == DATACAP_PAGE_ZERO && page.page_index == 2 && page.data != NULL);
  CHECK(page.data[0] == 0 && page.data[DATACAP_PAGE_SIZE - 1] == 0);
  CHECK_FAILS(datacap_cap_page_at(cap, 3 * DATACAP_PAGE_SIZE, &page), DATACAP_OUT_OF_RANGE,
              "12288");
  CHECK_FAILS(datacap_cap_page_at(cap, 0, NULL), DATACAP_INVALID_ARGUMENT, "NULL");

  /* copy_into */
  uint8_t out[10];
  OK(datacap_cap_copy_into(cap, DATACAP_PAGE_SIZE - 5, out, 10));
  CHECK(memcmp(out, "\0\0\0\0\0\xff\xff\xff\xff\xff", 10) == 0);
  CHECK_FAILS(datacap_cap_copy_into(cap, 3 * DATACAP_PAGE_SIZE - 5, out, 10), DATACAP_OUT_OF_RANGE,
              "");
  CHECK_FAILS(datacap_cap_copy_into(cap, 0, NULL, 10), DATACAP_INVALID_ARGUMENT, "NULL");
  OK(datacap_cap_copy_into(cap, 0, NULL, 0));

  /* copy is O(1) and independent; write across a page boundary. */
  datacap_cap* copy = NULL;
  OK(datacap_cap_copy(cap, &copy));
  OK(datacap_cap_write(copy, DATACAP_PAGE_SIZE - 2, (const uint8_t*)"WXYZ", 4));
  CHECK(datacap_cap_dirty_page_count(copy) == 2 && !datacap_cap_is_clean(copy));
  CHECK(datacap_cap_is_dirty(copy, 0) && datacap_cap_is_dirty(copy, 1));
  CHECK(!datacap_cap_is_dirty(copy, 2) && !datacap_cap_is_dirty(copy, 99));
  CHECK(datacap_cap_is_clean(cap));
  OK(datacap_cap_copy_into(copy, DATACAP_PAGE_SIZE - 2, out, 4));
  CHECK(memcmp(out, "WXYZ", 4) == 0);
  OK(datacap_cap_copy_into(cap, DATACAP_PAGE_SIZE - 2, out, 4));
  CHECK(memcmp(out, "\0\0\xff\xff", 4) == 0);
  CHECK_FAILS(datacap_cap_write(copy, 3 * DATACAP_PAGE_SIZE - 1, (const uint8_t*)"ab", 2),
              DATACAP_OUT_OF_RANGE, "ends past content_len 12288");
  CHECK_FAILS(datacap_cap_write(copy, 0, NULL, 2), DATACAP_INVALID_ARGUMENT, "NULL");
  OK(datacap_cap_write(copy, 0, NULL, 0));
  datacap_hash root;
  CHECK_FAILS(datacap_cap_root(copy, DATACAP_SHA256, &root), DATACAP_DIRTY_CAP, "");
  CHECK_FAILS(datacap_cap_root(cap, (datacap_digest)2, &root), DATACAP_INVALID_ARGUMENT,
              "datacap_digest 2");

  /* flush in place; the same bytes written into a fresh cap give the same root. */
  OK(datacap_cap_flush(copy));
  CHECK(datacap_cap_is_clean(copy));
  const datacap_hash flushed_root = root_of(copy);
  CHECK(!hashes_equal(&flushed_root, &original_root));
  memcpy(content + DATACAP_PAGE_SIZE - 2, "WXYZ", 4);
  datacap_cap* expected = NULL;
  OK(datacap_cap_new_from_bytes(content, sizeof content, 3 * DATACAP_PAGE_SIZE, &expected));
  datacap_hash expected_root = root_of(expected);
  CHECK(hashes_equal(&flushed_root, &expected_root));

  /* diff of the two */
  uint64_t* indices = NULL;
  size_t count = 99;
  OK(datacap_diff_pages(cap, copy, DATACAP_SHA256, &indices, &count));
  CHECK(count == 2 && indices != NULL && indices[0] == 0 && indices[1] == 1);
  datacap_free(indices);
  OK(datacap_diff_pages(copy, expected, DATACAP_SHA256, &indices, &count));
  CHECK(count == 0 && indices == NULL);
  CHECK_FAILS(datacap_diff_pages(cap, NULL, DATACAP_SHA256, &indices, &count),
              DATACAP_INVALID_ARGUMENT, "NULL");
  OK(datacap_cap_write(expected, 0, (const uint8_t*)"z", 1));
  CHECK_FAILS(datacap_diff_pages(cap, expected, DATACAP_SHA256, &indices, &count),
              DATACAP_DIRTY_CAP, "");
  datacap_cap_free(expected);

  /* write_page (explicit, even zeros) and put_page (backing, canonical). */
  uint8_t zeros[DATACAP_PAGE_SIZE];
  memset(zeros, 0, sizeof zeros);
  OK(datacap_cap_write_page(copy, DATACAP_PAGE_SIZE, zeros, sizeof zeros));
  CHECK(datacap_cap_is_dirty(copy, 1));
  OK(datacap_cap_page_at(copy, DATACAP_PAGE_SIZE, &page));
  CHECK(page.kind == DATACAP_PAGE_BYTES && page.data[0] == 0);
  CHECK_FAILS(datacap_cap_write_page(copy, 0, ff, sizeof ff), DATACAP_OUT_OF_RANGE, "");
  CHECK_FAILS(datacap_cap_write_page(copy, 3 * DATACAP_PAGE_SIZE, zeros, 1), DATACAP_OUT_OF_RANGE,
              "");
  CHECK_FAILS(datacap_cap_write_page(NULL, 0, zeros, 1), DATACAP_INVALID_ARGUMENT, "NULL");
  OK(datacap_cap_put_page(copy, 2 * DATACAP_PAGE_SIZE, (const uint8_t*)"tail", 4));
  CHECK(!datacap_cap_is_dirty(copy, 2));
  OK(datacap_cap_copy_into(copy, 2 * DATACAP_PAGE_SIZE, out, 4));
  CHECK(memcmp(out, "tail", 4) == 0);
  CHECK_FAILS(datacap_cap_put_page(copy, 0, ff, sizeof ff), DATACAP_OUT_OF_RANGE, "");
  CHECK_FAILS(datacap_cap_put_page(copy, 0, NULL, 1), DATACAP_INVALID_ARGUMENT, "NULL");

  /* place_shared: another cap's pages by reference, and a cap into itself. */
  datacap_cap* big = NULL;
  OK(datacap_cap_new_zeroed(8 * DATACAP_PAGE_SIZE, &big));
  OK(datacap_cap_place_shared(big, 4 * DATACAP_PAGE_SIZE, cap));
  OK(datacap_cap_copy_into(big, 4 * DATACAP_PAGE_SIZE, out, 5));
  CHECK(memcmp(out, "hello", 5) == 0);
  OK(datacap_cap_place_shared(big, 4 * DATACAP_PAGE_SIZE, big)); /* page 4 + i = page i */
  OK(datacap_cap_copy_into(big, 4 * DATACAP_PAGE_SIZE, out, 5));
  CHECK(memcmp(out, "\0\0\0\0\0", 5) == 0); /* page 0 of big was zero */
  CHECK_FAILS(datacap_cap_place_shared(big, 7, cap), DATACAP_INVALID_ARGUMENT, "");
  CHECK_FAILS(datacap_cap_place_shared(big, 0, NULL), DATACAP_INVALID_ARGUMENT, "NULL");
  datacap_cap_free(big);

  /* elide, Missing pages, resolve. */
  datacap_cap* partial = NULL;
  OK(datacap_cap_copy(cap, &partial));
  const uint64_t elide[2] = {1, 2}; /* page 2 is zero: stays zero */
  OK(datacap_cap_elide_pages(partial, elide, 2));
  datacap_hash partial_root = root_of(partial);
  CHECK(hashes_equal(&partial_root, &original_root)); /* eliding keeps the SHA-256 root */
  OK(datacap_cap_missing_pages(partial, &indices, &count));
  CHECK(count == 1 && indices[0] == 1);
  datacap_free(indices);
  OK(datacap_cap_page_at(partial, DATACAP_PAGE_SIZE, &page));
  CHECK(page.kind == DATACAP_PAGE_MISSING && page.data == NULL && page.page_index == 1);
  datacap_hash ff_root;
  OK(datacap_page_root(ff, DATACAP_PAGE_SIZE, DATACAP_SHA256, &ff_root));
  CHECK(hashes_equal(&page.missing_hash, &ff_root));
  CHECK_FAILS(datacap_cap_copy_into(partial, DATACAP_PAGE_SIZE, out, 1), DATACAP_MISSING_PAGE, "");
  CHECK_FAILS(datacap_cap_write(partial, DATACAP_PAGE_SIZE + 1, (const uint8_t*)"x", 1),
              DATACAP_MISSING_PAGE, "");
  const uint64_t elide_past[1] = {3};
  CHECK_FAILS(datacap_cap_elide_pages(partial, elide_past, 1), DATACAP_OUT_OF_RANGE, "");
  CHECK_FAILS(datacap_cap_elide_pages(partial, NULL, 1), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_cap_missing_pages(partial, NULL, &count), DATACAP_INVALID_ARGUMENT, "NULL");
  datacap_resolved_page wrong[1] = {{1, zeros, 10}};
  CHECK_FAILS(datacap_cap_resolve_missing(partial, wrong, 1), DATACAP_INTEGRITY, "");
  datacap_resolved_page not_missing[1] = {{0, ff, DATACAP_PAGE_SIZE}};
  CHECK_FAILS(datacap_cap_resolve_missing(partial, not_missing, 1), DATACAP_INVALID_ARGUMENT, "");
  datacap_resolved_page too_long[1] = {{1, ff, sizeof ff}};
  CHECK_FAILS(datacap_cap_resolve_missing(partial, too_long, 1), DATACAP_OUT_OF_RANGE, "");
  datacap_resolved_page null_page[1] = {{1, NULL, 1}};
  CHECK_FAILS(datacap_cap_resolve_missing(partial, null_page, 1), DATACAP_INVALID_ARGUMENT, "NULL");
  datacap_resolved_page right[1] = {{1, ff, DATACAP_PAGE_SIZE}};
  OK(datacap_cap_resolve_missing(partial, right, 1));
  OK(datacap_cap_missing_pages(partial, &indices, &count));
  CHECK(count == 0 && indices == NULL);
  OK(datacap_cap_copy_into(partial, DATACAP_PAGE_SIZE, out, 1));
  CHECK(out[0] == 0xff);
  datacap_cap_free(partial);

  datacap_cap_free(copy);
  datacap_cap_free(cap);
}

/* ---- archives ---------------------------------------------------------------------------- */
static int count_pages(void* context, uint64_t page_index, const uint8_t* bytes) {
  (void)page_index;
  (void)bytes;
  return ++*(int*)context >= 1000000;
}

static int stop_after_one(void* context, uint64_t page_index, const uint8_t* bytes) {
  (void)bytes;
  *(uint64_t*)context = page_index;
  return 1;
}

static void test_archives(const char* dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/cap.dcar", dir);
  uint8_t content[3 * DATACAP_PAGE_SIZE];
  memset(content, 0, sizeof content);
  memcpy(content, "archive", 7);
  memset(content + 2 * DATACAP_PAGE_SIZE, 0x5a, DATACAP_PAGE_SIZE);
  datacap_cap* cap = NULL;
  OK(datacap_cap_new_from_bytes(content, sizeof content, 0, &cap));
  const datacap_hash root = root_of(cap);

  datacap_archive_info info;
  memset(&info, 0, sizeof info);
  OK(datacap_archive_write(cap, path, DATACAP_SHA256, &info));
  CHECK(info.content_len == sizeof content && info.page_count == 3 && info.unique_pages == 2);
  CHECK(hashes_equal(&info.root, &root) && info.digest == DATACAP_SHA256 && info.file_size > 0);
  OK(datacap_archive_write(cap, path, DATACAP_SHA256, NULL)); /* replaces it */
  CHECK_FAILS(datacap_archive_write(cap, dir, DATACAP_SHA256, NULL), DATACAP_IO, dir);
  CHECK_FAILS(datacap_archive_write(NULL, path, DATACAP_SHA256, NULL), DATACAP_INVALID_ARGUMENT,
              "NULL");
  CHECK_FAILS(datacap_archive_write(cap, NULL, DATACAP_SHA256, NULL), DATACAP_INVALID_ARGUMENT,
              "NULL");

  const datacap_archive_verify verifies[2] = {DATACAP_VERIFY_STRUCTURE, DATACAP_VERIFY_FULL};
  const datacap_file_access accesses[2] = {DATACAP_ACCESS_MAP, DATACAP_ACCESS_COPY};
  for (int v = 0; v < 2; ++v) {
    for (int a = 0; a < 2; ++a) {
      datacap_cap* opened = NULL;
      datacap_archive_info opened_info;
      OK(datacap_archive_open(path, verifies[v], accesses[a], 0, &opened, &opened_info));
      datacap_hash opened_root = root_of(opened);
      CHECK(hashes_equal(&opened_root, &root) && hashes_equal(&opened_info.root, &root));
      datacap_cap_free(opened);
    }
  }
  datacap_cap* opened = NULL;
  CHECK_FAILS(
      datacap_archive_open(path, DATACAP_VERIFY_FULL, DATACAP_ACCESS_COPY, 4096, &opened, NULL),
      DATACAP_OUT_OF_RANGE, "");
  CHECK_FAILS(
      datacap_archive_open(path, (datacap_archive_verify)5, DATACAP_ACCESS_MAP, 0, &opened, NULL),
      DATACAP_INVALID_ARGUMENT, "datacap_archive_verify 5");
  CHECK_FAILS(
      datacap_archive_open(path, DATACAP_VERIFY_FULL, (datacap_file_access)5, 0, &opened, NULL),
      DATACAP_INVALID_ARGUMENT, "datacap_file_access 5");
  CHECK_FAILS(datacap_archive_open(path, DATACAP_VERIFY_FULL, DATACAP_ACCESS_MAP, 0, NULL, NULL),
              DATACAP_INVALID_ARGUMENT, "NULL");
  char absent[4200];
  snprintf(absent, sizeof absent, "%s/absent.dcar", dir);
  CHECK_FAILS(
      datacap_archive_open(absent, DATACAP_VERIFY_FULL, DATACAP_ACCESS_MAP, 0, &opened, NULL),
      DATACAP_IO, "absent.dcar");
  CHECK(opened == NULL);

  /* The reader. */
  datacap_archive* archive = NULL;
  OK(datacap_archive_new(path, 0, &archive));
  OK(datacap_archive_get_info(archive, &info));
  CHECK(hashes_equal(&info.root, &root) && info.flushed_loaded_pages == 2);
  OK(datacap_archive_verify_all(archive));
  int pages = 0;
  OK(datacap_archive_for_each_page(archive, count_pages, &pages));
  CHECK(pages == 2);
  uint64_t first = 99;
  OK(datacap_archive_for_each_page(archive, stop_after_one, &first));
  CHECK(first == 0);
  CHECK_FAILS(datacap_archive_for_each_page(archive, NULL, NULL), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_archive_get_info(NULL, &info), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_archive_verify_all(NULL), DATACAP_INVALID_ARGUMENT, "NULL");
  datacap_archive_free(archive);
  datacap_archive_free(NULL);
  archive = NULL;
  CHECK_FAILS(datacap_archive_new(absent, 0, &archive), DATACAP_IO, "absent.dcar");
  CHECK_FAILS(datacap_archive_new(NULL, 0, &archive), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK(archive == NULL);
  OK(datacap_archive_verify_file(path, &info));
  CHECK(hashes_equal(&info.root, &root));
  CHECK_FAILS(datacap_archive_verify_file(NULL, NULL), DATACAP_INVALID_ARGUMENT, "NULL");

  /* A damaged payload (docs/format.md §2: the first payload follows the 4096-byte header). */
  FILE* file = fopen(path, "r+b");
  CHECK(file != NULL);
  if (file != NULL) {
    fseek(file, DATACAP_PAGE_SIZE + 100, SEEK_SET);
    fputc(0x01, file);
    fclose(file);
  }
  CHECK_FAILS(datacap_archive_verify_file(path, NULL), DATACAP_DECODE, "cap.dcar");
  CHECK_FAILS(
      datacap_archive_open(path, DATACAP_VERIFY_FULL, DATACAP_ACCESS_COPY, 0, &opened, NULL),
      DATACAP_DECODE, "cap.dcar");
  OK(datacap_archive_new(path, 0, &archive)); /* the structure is sound */
  CHECK_FAILS(datacap_archive_verify_all(archive), DATACAP_DECODE, "");
  datacap_archive_free(archive);
  /* Not an archive at all. */
  file = fopen(path, "wb");
  if (file != NULL) {
    fputs("not an archive", file);
    fclose(file);
  }
  CHECK_FAILS(datacap_archive_new(path, 0, &archive), DATACAP_DECODE, "cap.dcar");
  remove(path);
  datacap_cap_free(cap);
}

/* ---- stores ------------------------------------------------------------------------------ */
static void test_store(datacap_store* store, const char* name) {
  fprintf(stderr, "capi_test: store %s\n", name);
  uint8_t content[4 * DATACAP_PAGE_SIZE];
  memset(content, 0, sizeof content);
  memcpy(content, "store me", 8);
  memset(content + 3 * DATACAP_PAGE_SIZE, 0x33, DATACAP_PAGE_SIZE);
  datacap_cap* cap = NULL;
  OK(datacap_cap_new_from_bytes(content, sizeof content, 0, &cap));
  datacap_hash root, saved;
  root = root_of(cap);
  OK(datacap_store_save_cap(store, cap, &saved));
  CHECK(hashes_equal(&root, &saved));
  OK(datacap_store_save_cap(store, cap, NULL)); /* again: nothing written */
  bool has = false;
  OK(datacap_store_has_cap(store, &root, &has));
  CHECK(has);
  datacap_cap* loaded = NULL;
  OK(datacap_store_load_cap(store, &root, &loaded));
  datacap_hash loaded_root = root_of(loaded);
  CHECK(hashes_equal(&loaded_root, &root));
  uint8_t out[8];
  OK(datacap_cap_copy_into(loaded, 0, out, 8));
  CHECK(memcmp(out, "store me", 8) == 0);
  datacap_cap_free(loaded);

  /* Pages by root. */
  datacap_hash page_root, expected_root;
  OK(datacap_store_put_page(store, (const uint8_t*)"a page", 6, &page_root));
  OK(datacap_page_root((const uint8_t*)"a page", 6, DATACAP_SHA256, &expected_root));
  CHECK(hashes_equal(&page_root, &expected_root));
  OK(datacap_store_has_page(store, &page_root, &has));
  CHECK(has);
  uint8_t page[DATACAP_PAGE_SIZE];
  bool found = false;
  OK(datacap_store_get_page(store, &page_root, page, &found));
  CHECK(found && memcmp(page, "a page", 6) == 0 && page[6] == 0);
  datacap_hash unknown;
  memset(&unknown, 0xab, sizeof unknown);
  OK(datacap_store_get_page(store, &unknown, page, &found));
  CHECK(!found);
  OK(datacap_store_has_page(store, &unknown, &has));
  CHECK(!has);
  OK(datacap_store_has_cap(store, &unknown, &has));
  CHECK(!has);
  uint8_t too_long[DATACAP_PAGE_SIZE + 1];
  memset(too_long, 1, sizeof too_long);
  CHECK_FAILS(datacap_store_put_page(store, too_long, sizeof too_long, NULL), DATACAP_OUT_OF_RANGE,
              "");
  CHECK_FAILS(datacap_store_load_cap(store, &unknown, &loaded), DATACAP_NOT_FOUND, "abababab");

  /* A dirty cap cannot be saved. */
  datacap_cap* dirty = NULL;
  OK(datacap_cap_copy(cap, &dirty));
  OK(datacap_cap_write(dirty, 0, (const uint8_t*)"X", 1));
  CHECK_FAILS(datacap_store_save_cap(store, dirty, NULL), DATACAP_DIRTY_CAP, "");
  datacap_cap_free(dirty);

  /* list, hydrate, gc. */
  datacap_saved_cap* caps = NULL;
  size_t count = 0;
  OK(datacap_store_list_caps(store, &caps, &count));
  CHECK(count == 1 && caps != NULL && hashes_equal(&caps[0].root, &root));
  CHECK(caps != NULL && caps[0].content_len == sizeof content && caps[0].page_entries == 2);
  datacap_free(caps);

  datacap_cap* partial = NULL;
  OK(datacap_cap_copy(cap, &partial));
  const uint64_t elide[2] = {0, 3};
  OK(datacap_cap_elide_pages(partial, elide, 2));
  uint64_t hydrated = 0, still_missing = 99;
  OK(datacap_store_hydrate(store, partial, &hydrated, &still_missing));
  CHECK(hydrated == 2 && still_missing == 0);
  OK(datacap_cap_copy_into(partial, 0, out, 8));
  CHECK(memcmp(out, "store me", 8) == 0);
  OK(datacap_store_hydrate(store, partial, NULL, NULL));
  datacap_cap_free(partial);

  datacap_gc_report report;
  memset(&report, 0, sizeof report);
  CHECK_FAILS(datacap_store_gc(store, &unknown, 1, &report), DATACAP_NOT_FOUND, "");
  OK(datacap_store_gc(store, &root, 1, &report));
  CHECK(report.caps_kept == 1 && report.caps_removed == 0);
  CHECK(report.pages_kept == 2 && report.pages_removed == 1); /* "a page" goes */
  OK(datacap_store_has_page(store, &page_root, &has));
  CHECK(!has);
  OK(datacap_store_gc(store, NULL, 0, NULL));
  OK(datacap_store_has_cap(store, &root, &has));
  CHECK(!has);
  OK(datacap_store_list_caps(store, &caps, &count));
  CHECK(count == 0 && caps == NULL);

  /* NULLs. */
  CHECK_FAILS(datacap_store_save_cap(NULL, cap, NULL), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_store_save_cap(store, NULL, NULL), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_store_load_cap(store, NULL, &loaded), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_store_has_cap(store, &root, NULL), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_store_has_page(NULL, &root, &has), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_store_put_page(store, NULL, 1, NULL), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_store_get_page(store, &root, NULL, &found), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_store_gc(store, NULL, 1, NULL), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_store_list_caps(store, NULL, &count), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_store_hydrate(store, NULL, NULL, NULL), DATACAP_INVALID_ARGUMENT, "NULL");
  datacap_cap_free(cap);
}

static void test_stores(const char* dir) {
  datacap_store* store = NULL;
  OK(datacap_store_new_memory(&store));
  test_store(store, "memory");
  datacap_store_free(store);
  datacap_store_free(NULL);

  char path[4096];
  snprintf(path, sizeof path, "%s/lmdb", dir);
  store = NULL;
  OK(datacap_store_open_lmdb(path, NULL, &store));
  test_store(store, "lmdb");
  /* Save one cap, reopen read-only: loads work, writes are misuse. */
  datacap_cap* cap = NULL;
  OK(datacap_cap_new_from_bytes((const uint8_t*)"kept", 4, 0, &cap));
  datacap_hash root;
  OK(datacap_store_save_cap(store, cap, &root));
  datacap_store_free(store);
  datacap_lmdb_options options = {0, false, true};
  store = NULL;
  OK(datacap_store_open_lmdb(path, &options, &store));
  datacap_cap* loaded = NULL;
  OK(datacap_store_load_cap(store, &root, &loaded));
  datacap_cap_free(loaded);
  CHECK_FAILS(datacap_store_save_cap(store, cap, NULL), DATACAP_INVALID_ARGUMENT, "lmdb");
  CHECK_FAILS(datacap_store_gc(store, &root, 1, NULL), DATACAP_INVALID_ARGUMENT, "lmdb");
  datacap_store_free(store);
  datacap_cap_free(cap);

  char absent[4200];
  snprintf(absent, sizeof absent, "%s/no/such/dir", dir);
  datacap_lmdb_options no_create = {0, false, false};
  store = NULL;
  CHECK_FAILS(datacap_store_open_lmdb(absent, &no_create, &store), DATACAP_IO, "no/such/dir");
  CHECK(store == NULL);
  CHECK_FAILS(datacap_store_open_lmdb(NULL, NULL, &store), DATACAP_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(datacap_store_new_memory(NULL), DATACAP_INVALID_ARGUMENT, "NULL");
}

/* ---- proofs ------------------------------------------------------------------------------ */
static void test_proofs(void) {
  uint8_t content[5 * DATACAP_PAGE_SIZE];
  for (size_t i = 0; i < sizeof content; ++i) content[i] = (uint8_t)(i * 7 + 1);
  datacap_cap* cap = NULL;
  OK(datacap_cap_new_from_bytes(content, sizeof content, 0, &cap));
  const datacap_digest digests[2] = {DATACAP_SHA256, DATACAP_BLAKE2B256};
  for (int d = 0; d < 2; ++d) {
    datacap_hash root;
    OK(datacap_cap_root(cap, digests[d], &root));
    bool valid = false;

    datacap_page_proof proof;
    OK(datacap_prove_page(cap, 3, digests[d], &proof));
    CHECK(proof.page_index == 3 && proof.content_len == sizeof content);
    CHECK(proof.branch_len == 4); /* depth 3 (8 leaves) + the size root */
    OK(datacap_verify_page_proof(&proof, &root, digests[d], &valid));
    CHECK(valid);
    proof.leaf.bytes[0] ^= 1;
    OK(datacap_verify_page_proof(&proof, &root, digests[d], &valid));
    CHECK(!valid);
    proof.leaf.bytes[0] ^= 1;
    proof.branch_len = 2; /* a truncated branch is a bad proof, not an error */
    OK(datacap_verify_page_proof(&proof, &root, digests[d], &valid));
    CHECK(!valid);
    proof.branch_len = 4;
    CHECK_FAILS(datacap_verify_page_proof(&proof, NULL, digests[d], &valid),
                DATACAP_INVALID_ARGUMENT, "NULL");
    datacap_page_proof_clear(&proof);
    CHECK(proof.branch == NULL && proof.branch_len == 0);
    datacap_page_proof_clear(NULL);
    CHECK_FAILS(datacap_prove_page(cap, 5, digests[d], &proof), DATACAP_OUT_OF_RANGE, "");

    const uint64_t indices[3] = {0, 2, 4};
    datacap_multi_proof multi;
    OK(datacap_prove_pages(cap, indices, 3, digests[d], &multi));
    CHECK(multi.page_count == 3 && multi.helper_count > 0);
    OK(datacap_verify_multi_proof(&multi, &root, digests[d], &valid));
    CHECK(valid);
    multi.helpers[0].bytes[31] ^= 0x80;
    OK(datacap_verify_multi_proof(&multi, &root, digests[d], &valid));
    CHECK(!valid);
    datacap_multi_proof_clear(&multi);
    CHECK(multi.helpers == NULL && multi.page_indices == NULL);
    datacap_multi_proof_clear(NULL);
    const uint64_t unsorted[2] = {2, 1};
    CHECK_FAILS(datacap_prove_pages(cap, unsorted, 2, digests[d], &multi), DATACAP_INVALID_ARGUMENT,
                "");
    CHECK_FAILS(datacap_prove_pages(cap, NULL, 0, digests[d], &multi), DATACAP_INVALID_ARGUMENT,
                "");

    datacap_range_proof range;
    OK(datacap_prove_range(cap, DATACAP_PAGE_SIZE - 3, 10, digests[d], &range));
    CHECK(range.pages.page_count == 2 && range.page_bytes_len == 2 * DATACAP_PAGE_SIZE);
    CHECK(memcmp(range.page_bytes + range.offset % DATACAP_PAGE_SIZE,
                 content + DATACAP_PAGE_SIZE - 3, 10) == 0);
    OK(datacap_verify_range_proof(&range, &root, digests[d], &valid));
    CHECK(valid);
    range.page_bytes[100] ^= 1;
    OK(datacap_verify_range_proof(&range, &root, digests[d], &valid));
    CHECK(!valid);
    datacap_range_proof_clear(&range);
    CHECK(range.page_bytes == NULL && range.pages.leaves == NULL);
    datacap_range_proof_clear(NULL);
    CHECK_FAILS(datacap_prove_range(cap, 0, 0, digests[d], &range), DATACAP_INVALID_ARGUMENT, "");
    CHECK_FAILS(datacap_prove_range(cap, sizeof content - 1, 2, digests[d], &range),
                DATACAP_OUT_OF_RANGE, "");
    CHECK_FAILS(datacap_verify_range_proof(&range, &root, digests[d], NULL),
                DATACAP_INVALID_ARGUMENT, "NULL");
  }
  /* A proof built by the caller from received values, pointing at its own arrays. */
  datacap_page_proof proof;
  OK(datacap_prove_page(cap, 1, DATACAP_SHA256, &proof));
  datacap_hash branch[8];
  memcpy(branch, proof.branch, proof.branch_len * sizeof(datacap_hash));
  datacap_page_proof received = {proof.content_len, proof.page_index, proof.leaf, branch,
                                 proof.branch_len};
  datacap_page_proof_clear(&proof);
  datacap_hash root = root_of(cap);
  bool valid = false;
  OK(datacap_verify_page_proof(&received, &root, DATACAP_SHA256, &valid));
  CHECK(valid);
  received.branch = NULL; /* NULL with a length: misuse */
  CHECK_FAILS(datacap_verify_page_proof(&received, &root, DATACAP_SHA256, &valid),
              DATACAP_INVALID_ARGUMENT, "NULL");

  /* Received proofs whose lengths no proof has are bad proofs (*valid = 0), not errors, and
   * ask for no memory (regression: a huge branch_len was an INTERNAL error or an abort). */
  received.branch = branch;
  received.branch_len = SIZE_MAX;
  valid = true;
  OK(datacap_verify_page_proof(&received, &root, DATACAP_SHA256, &valid));
  CHECK(!valid);
  received.branch_len = (size_t)1 << 40;
  valid = true;
  OK(datacap_verify_page_proof(&received, &root, DATACAP_SHA256, &valid));
  CHECK(!valid);
  {
    uint64_t one_index[1] = {1};
    datacap_hash one_leaf[1];
    memset(one_leaf, 0, sizeof one_leaf);
    datacap_multi_proof hostile = {proof.content_len, one_index, one_leaf,
                                   (size_t)1 << 61,   branch,    1};
    valid = true;
    OK(datacap_verify_multi_proof(&hostile, &root, DATACAP_SHA256, &valid));
    CHECK(!valid);
    hostile.page_count = 1;
    hostile.helper_count = SIZE_MAX;
    valid = true;
    OK(datacap_verify_multi_proof(&hostile, &root, DATACAP_SHA256, &valid));
    CHECK(!valid);
    hostile.helper_count = 1;
    uint8_t page_bytes[DATACAP_PAGE_SIZE];
    memset(page_bytes, 0, sizeof page_bytes);
    datacap_range_proof hostile_range = {0, 1, hostile, page_bytes, SIZE_MAX};
    valid = true;
    OK(datacap_verify_range_proof(&hostile_range, &root, DATACAP_SHA256, &valid));
    CHECK(!valid);
  }

  /* Proofs need a clean cap; a range over a Missing page has no bytes to give. */
  OK(datacap_cap_write(cap, 0, (const uint8_t*)"x", 1));
  CHECK_FAILS(datacap_prove_page(cap, 0, DATACAP_SHA256, &proof), DATACAP_DIRTY_CAP, "");
  OK(datacap_cap_flush(cap));
  const uint64_t elide[1] = {2};
  OK(datacap_cap_elide_pages(cap, elide, 1));
  datacap_range_proof range;
  CHECK_FAILS(datacap_prove_range(cap, 2 * DATACAP_PAGE_SIZE, 1, DATACAP_SHA256, &range),
              DATACAP_MISSING_PAGE, "");
  datacap_cap_free(cap);
}

/* Removes the test's temporary directory tree (files and one level of directories). */
static void remove_tree(const char* dir) {
  DIR* handle = opendir(dir);
  if (handle == NULL) return;
  struct dirent* entry;
  char path[4096];
  while ((entry = readdir(handle)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
    if (remove(path) != 0) remove_tree(path);
  }
  closedir(handle);
  rmdir(dir);
}

/* ---- guest windows ------------------------------------------------------------------------ */

static void test_windows(void) {
  uint8_t bytes[3 * DATACAP_PAGE_SIZE];
  for (size_t i = 0; i < sizeof bytes; ++i) bytes[i] = (uint8_t)(i * 7 + 1);
  datacap_cap* cap = NULL;
  OK(datacap_cap_new_from_bytes(bytes, sizeof bytes, 4 * DATACAP_PAGE_SIZE, &cap));
  datacap_hash missing_hash;
  OK(datacap_page_root(bytes + DATACAP_PAGE_SIZE, DATACAP_PAGE_SIZE, DATACAP_SHA256,
                       &missing_hash));
  const uint64_t one[1] = {1};
  OK(datacap_cap_elide_pages(cap, one, 1));

  datacap_window_options options = datacap_window_default_options();
  CHECK(options.tracking == DATACAP_TRACKING_AUTO && options.max_mappings == 64);
  datacap_window* window = NULL;
  options.tracking = (datacap_dirty_tracking)7;
  CHECK_FAILS(datacap_window_new(cap, &options, &window), DATACAP_INVALID_ARGUMENT,
              "datacap_dirty_tracking");
  CHECK(window == NULL);
  CHECK_FAILS(datacap_window_new(NULL, NULL, &window), DATACAP_INVALID_ARGUMENT, "NULL cap");
  const datacap_status made = datacap_window_new(cap, NULL, &window);
  if (made == DATACAP_UNSUPPORTED) { /* a host without dirty tracking: nothing more to check */
    datacap_cap_free(cap);
    return;
  }
  OK(made);
  uint8_t* base = datacap_window_base(window);
  CHECK(base != NULL && datacap_window_size(window) == 4 * DATACAP_PAGE_SIZE);
  CHECK(datacap_window_tracking(window) != DATACAP_TRACKING_AUTO);
  CHECK(memcmp(base, bytes, DATACAP_PAGE_SIZE) == 0);
  CHECK(base[3 * DATACAP_PAGE_SIZE] == 0);

  /* Stores through the window = the same stores through datacap_cap_write. */
  base[10] = 0xAB;
  memset(base + 3 * DATACAP_PAGE_SIZE + 100, 0x5C, 50);
  datacap_cap* expected = NULL;
  OK(datacap_cap_copy(cap, &expected));
  const uint8_t ab = 0xAB;
  uint8_t fives[50];
  memset(fives, 0x5C, sizeof fives);
  OK(datacap_cap_write(expected, 10, &ab, 1));
  OK(datacap_cap_write(expected, 3 * DATACAP_PAGE_SIZE + 100, fives, sizeof fives));
  datacap_cap* harvested = NULL;
  OK(datacap_window_harvest(window, &harvested));
  CHECK(datacap_cap_dirty_page_count(harvested) == 2);
  CHECK(datacap_cap_is_dirty(harvested, 0) && datacap_cap_is_dirty(harvested, 3));
  OK(datacap_cap_flush(harvested));
  OK(datacap_cap_flush(expected));
  datacap_hash got = root_of(harvested), want = root_of(expected);
  CHECK(hashes_equal(&got, &want));

  /* The Missing page, the guard, outside. */
  datacap_window_fault f = datacap_window_classify(window, base + DATACAP_PAGE_SIZE + 5);
  CHECK(f.kind == DATACAP_FAULT_MISSING && f.page_index == 1 &&
        hashes_equal(&f.hash, &missing_hash));
  f = datacap_window_classify(window, base + 2 * DATACAP_PAGE_SIZE);
  CHECK(f.kind == DATACAP_FAULT_PAGE && f.page_index == 2);
  CHECK(datacap_window_classify(window, base + 4 * DATACAP_PAGE_SIZE).kind == DATACAP_FAULT_GUARD);
  CHECK(datacap_window_classify(window, base - 1).kind == DATACAP_FAULT_OUTSIDE);
  CHECK(datacap_window_classify(NULL, base).kind == DATACAP_FAULT_OUTSIDE);

  /* reset undoes, remap replaces; a bigger cap does not fit. */
  base[20] = 1;
  OK(datacap_window_reset(window));
  CHECK(base[20] == bytes[20] && base[10] == 0xAB);
  OK(datacap_window_remap(window, cap));
  CHECK(base[10] == bytes[10]);
  datacap_cap* big = NULL;
  OK(datacap_cap_new_zeroed(8 * DATACAP_PAGE_SIZE, &big));
  CHECK_FAILS(datacap_window_remap(window, big), DATACAP_OUT_OF_RANGE, "does not fit");
  CHECK_FAILS(datacap_window_harvest(NULL, &harvested), DATACAP_INVALID_ARGUMENT, "NULL window");
  CHECK(datacap_window_base(NULL) == NULL && datacap_window_size(NULL) == 0);

  datacap_window_free(window);
  datacap_window_free(NULL);
  datacap_cap_free(big);
  datacap_cap_free(harvested);
  datacap_cap_free(expected);
  datacap_cap_free(cap);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s VECTORS_DIR\n", argv[0]);
    return 2;
  }
  char dir[] = "/tmp/datacap-capi-XXXXXX";
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    return 2;
  }
  test_basics();
  test_vectors(argv[1]);
  test_caps();
  test_archives(dir);
  test_stores(dir);
  test_proofs();
  test_windows();
  remove_tree(dir);
  if (failures != 0) {
    fprintf(stderr, "capi_test: %d check(s) failed\n", failures);
    return 1;
  }
  printf("capi_test: all checks passed\n");
  return 0;
}

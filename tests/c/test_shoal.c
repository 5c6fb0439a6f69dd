/*
 * test_shoal.c: exercises Shoal through its C ABI only (include/shoal.h + libshoal.a).
 *
 * Built and run by tests/c_abi.rs (`cargo test --test c_abi`), which also starts a
 * `shoal-server` for the users and sync tests and passes its auth URL in $SHOAL_TEST_AUTH_URL
 * (the sync tests use realm://HOST:PORT of the same server). By hand:
 *   cargo build && cc -std=c11 -Wall -Wextra -Werror -I include tests/c/test_shoal.c \
 *       target/debug/libshoal.a -lpthread -ldl -lm -o /tmp/test_shoal
 *   target/debug/shoal-server --data /tmp/srv --listen 127.0.0.1:0 --debug-provider &  # prints the address
 *   SHOAL_TEST_AUTH_URL=http://ADDR/auth /tmp/test_shoal
 *
 * Every test makes its files in a fresh directory (mkdtemp under $SHOAL_TEST_TMPDIR, $TMPDIR
 * or /tmp) and frees every string, value and handle it gets, so that the program is clean
 * under `valgrind --leak-check=full`. The last line is "N passed, M failed".
 */
#define _XOPEN_SOURCE 700

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                       */

static char g_dir[1024];

static void make_temp_dir(void) {
    const char *base = getenv("SHOAL_TEST_TMPDIR");
    if (!base || !*base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/shoal-c-XXXXXX", base);
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "mkdtemp(%s) failed: %s\n", g_dir, strerror(errno));
        exit(2);
    }
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_temp_dir(void) {
    nftw(g_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A path in the test directory; the buffer must hold 4096 bytes. */
static const char *path_in(char *buf, const char *name) {
    snprintf(buf, 4096, "%s/%s", g_dir, name);
    return buf;
}

static bool file_exists(const char *path) {
    return access(path, F_OK) == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Values                                                                                      */

/* Values are built with the header's static inline constructors (shoal_value_int, ...),
 * which this program also compile-tests. */

/* Reads an INT property. */
#define GET_INT(obj, prop) get_int_at(__FILE__, __LINE__, (obj), (prop))
static int64_t get_int_at(const char *file, int line, const shoal_object_t *o, const char *prop) {
    shoal_value_t v;
    if (!shoal_object_get(o, prop, &v)) check_failf(file, line, "shoal_object_get(%s)", prop);
    if (v.kind != SHOAL_VALUE_INT) {
        int kind = v.kind;
        shoal_value_free(&v);
        check_failf(file, line, "%s is not an INT (kind %d)", prop, kind);
    }
    return v.data.integer;
}

/* Checks that a STRING property holds exactly these `n` bytes (NUL-terminated on return). */
#define CHECK_PROP_STRN(obj, prop, s, n) check_prop_strn_at(__FILE__, __LINE__, (obj), (prop), (s), (n))
#define CHECK_PROP_STR(obj, prop, s) check_prop_strn_at(__FILE__, __LINE__, (obj), (prop), (s), strlen(s))
static void check_prop_strn_at(const char *file, int line, const shoal_object_t *o, const char *prop,
                               const char *s, size_t n) {
    shoal_value_t v;
    if (!shoal_object_get(o, prop, &v)) check_failf(file, line, "shoal_object_get(%s)", prop);
    if (v.kind != SHOAL_VALUE_STRING) {
        int kind = v.kind;
        shoal_value_free(&v);
        check_failf(file, line, "%s is not a STRING (kind %d)", prop, kind);
    }
    bool ok = v.data.string.size == n && v.data.string.data && memcmp(v.data.string.data, s, n) == 0 &&
              v.data.string.data[n] == '\0';
    shoal_value_free(&v);
    if (!ok) check_failf(file, line, "%s != \"%s\" (%zu bytes)", prop, s, n);
}

/* Checks that a property reads as NULL. */
#define CHECK_PROP_NULL(obj, prop) check_prop_null_at(__FILE__, __LINE__, (obj), (prop))
static void check_prop_null_at(const char *file, int line, const shoal_object_t *o, const char *prop) {
    shoal_value_t v;
    if (!shoal_object_get(o, prop, &v)) check_failf(file, line, "shoal_object_get(%s)", prop);
    int kind = v.kind;
    shoal_value_free(&v);
    if (kind != SHOAL_VALUE_NULL) check_failf(file, line, "%s is not NULL (kind %d)", prop, kind);
}

/* ------------------------------------------------------------------------------------------ */
/* The test schema                                                                             */

/*
 * Person {id: int pk, name: string? indexed, nick: string, age: int, score: double, ratio: float,
 *         active: bool, born: timestamp?, photo: binary?, dog: Dog?, dogs: [Dog], tags: [string],
 *         counter: int}
 * Dog    {name: string, age: int}                (no primary key)
 * Tag    {code: string pk, label: string?}
 */
static shoal_schema_t *people_schema(void) {
    shoal_schema_t *s = shoal_schema_new();
    CHECK(s != NULL);
    CHECK(shoal_schema_add_class(s, "Person", "id"));
    CHECK(shoal_schema_add_property(s, "Person", "id", SHOAL_PROPERTY_TYPE_INT, 0, NULL));
    CHECK(shoal_schema_add_property(s, "Person", "name", SHOAL_PROPERTY_TYPE_STRING,
                                    SHOAL_PROPERTY_NULLABLE | SHOAL_PROPERTY_INDEXED, NULL));
    CHECK(shoal_schema_add_property(s, "Person", "nick", SHOAL_PROPERTY_TYPE_STRING, 0, NULL));
    CHECK(shoal_schema_add_property(s, "Person", "age", SHOAL_PROPERTY_TYPE_INT, SHOAL_PROPERTY_INDEXED, NULL));
    CHECK(shoal_schema_add_property(s, "Person", "score", SHOAL_PROPERTY_TYPE_DOUBLE, 0, NULL));
    CHECK(shoal_schema_add_property(s, "Person", "ratio", SHOAL_PROPERTY_TYPE_FLOAT, 0, NULL));
    CHECK(shoal_schema_add_property(s, "Person", "active", SHOAL_PROPERTY_TYPE_BOOL, 0, NULL));
    CHECK(shoal_schema_add_property(s, "Person", "born", SHOAL_PROPERTY_TYPE_TIMESTAMP, SHOAL_PROPERTY_NULLABLE,
                                    NULL));
    CHECK(shoal_schema_add_property(s, "Person", "photo", SHOAL_PROPERTY_TYPE_BINARY, SHOAL_PROPERTY_NULLABLE, NULL));
    /* The link target may be added later. */
    CHECK(shoal_schema_add_property(s, "Person", "dog", SHOAL_PROPERTY_TYPE_LINK, SHOAL_PROPERTY_NULLABLE, "Dog"));
    CHECK(shoal_schema_add_property(s, "Person", "dogs", SHOAL_PROPERTY_TYPE_LINK, SHOAL_PROPERTY_LIST, "Dog"));
    CHECK(shoal_schema_add_property(s, "Person", "tags", SHOAL_PROPERTY_TYPE_STRING, SHOAL_PROPERTY_LIST, NULL));
    CHECK(shoal_schema_add_property(s, "Person", "counter", SHOAL_PROPERTY_TYPE_INT, 0, NULL));
    CHECK(shoal_schema_add_class(s, "Dog", NULL));
    CHECK(shoal_schema_add_property(s, "Dog", "name", SHOAL_PROPERTY_TYPE_STRING, 0, NULL));
    CHECK(shoal_schema_add_property(s, "Dog", "age", SHOAL_PROPERTY_TYPE_INT, 0, NULL));
    CHECK(shoal_schema_add_class(s, "Tag", "code"));
    CHECK(shoal_schema_add_property(s, "Tag", "code", SHOAL_PROPERTY_TYPE_STRING, 0, NULL));
    CHECK(shoal_schema_add_property(s, "Tag", "label", SHOAL_PROPERTY_TYPE_STRING, SHOAL_PROPERTY_NULLABLE, NULL));
    return s;
}

/* A configuration of `name` in the test directory with the people schema. */
static shoal_config_t *people_config(const char *name) {
    char path[4096];
    shoal_config_t *c = shoal_config_new(path_in(path, name));
    CHECK(c != NULL);
    shoal_schema_t *s = people_schema();
    CHECK(shoal_config_set_schema(c, s));
    CHECK(shoal_release(s));
    return c;
}

/* Opens `name` with the people schema. */
static shoal_realm_t *open_people(const char *name) {
    shoal_config_t *c = people_config(name);
    shoal_realm_t *r = shoal_realm_open(c);
    CHECK(r != NULL);
    CHECK(shoal_release(c));
    return r;
}

static shoal_object_t *create_person(shoal_realm_t *r, int64_t id) {
    shoal_value_t pk = shoal_value_int(id);
    shoal_object_t *o = shoal_object_create(r, "Person", &pk);
    CHECK(o != NULL);
    return o;
}

static int64_t count_objects(shoal_realm_t *r, const char *class_name) {
    shoal_results_t *res = shoal_realm_objects(r, class_name);
    CHECK(res != NULL);
    int64_t n = shoal_results_count(res);
    CHECK(n >= 0);
    CHECK(shoal_release(res));
    return n;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Writes the "id" of every result as "1,2,3" into buf (sorted by id if `sorted`). */
static void ids_csv(const shoal_results_t *res, bool sorted, char *buf, size_t cap) {
    int64_t n = shoal_results_count(res);
    CHECK(n >= 0 && n <= 64);
    int64_t ids[64];
    for (int64_t i = 0; i < n; i++) {
        shoal_object_t *o = shoal_results_get(res, (size_t)i);
        CHECK(o != NULL);
        ids[i] = GET_INT(o, "id");
        CHECK(shoal_release(o));
    }
    if (sorted) qsort(ids, (size_t)n, sizeof ids[0], cmp_i64);
    buf[0] = '\0';
    for (int64_t i = 0; i < n; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, "%s%" PRId64, i ? "," : "", ids[i]);
    }
}

/* Runs a Person query and checks the ids it selects (in id order). */
#define EXPECT_QUERY(realm, pred, args, nargs, expected) \
    expect_query_at(__FILE__, __LINE__, (realm), (pred), (args), (nargs), (expected))
static void expect_query_at(const char *file, int line, const shoal_realm_t *r, const char *pred,
                            const shoal_value_t *args, size_t nargs, const char *expected) {
    shoal_results_t *res = shoal_realm_query(r, "Person", pred, args, nargs);
    if (!res) check_failf(file, line, "query \"%s\" failed", pred);
    char got[512];
    ids_csv(res, true, got, sizeof got);
    CHECK(shoal_release(res));
    if (strcmp(got, expected) != 0)
        check_failf(file, line, "query \"%s\": expected ids [%s], got [%s]", pred, expected, got);
}

/* ------------------------------------------------------------------------------------------ */
/* Versions and errors                                                                         */

static void test_versions(void) {
    CHECK_STR_EQ(SHOAL_VERSION, shoal_libversion());
    CHECK_INT_EQ(SHOAL_VERSION_NUMBER, shoal_libversion_number());
    CHECK_NO_ERROR();
    int major = 0, minor = 0, patch = 0;
    CHECK(sscanf(shoal_libversion(), "%d.%d.%d", &major, &minor, &patch) == 3);
    CHECK_INT_EQ(shoal_libversion_number(), major * 1000000 + minor * 1000 + patch);
}

/* The header's static inline value constructors fill in the kind and the payload, and
 * borrow what they point to. */
static void test_value_constructors(void) {
    shoal_value_t v = shoal_value_null();
    CHECK(v.kind == SHOAL_VALUE_NULL);
    v = shoal_value_bool(true);
    CHECK(v.kind == SHOAL_VALUE_BOOL && v.data.boolean);
    v = shoal_value_int(-42);
    CHECK(v.kind == SHOAL_VALUE_INT && v.data.integer == -42);
    v = shoal_value_float(1.5f);
    CHECK(v.kind == SHOAL_VALUE_FLOAT && v.data.fnum == 1.5f);
    v = shoal_value_double(2.25);
    CHECK(v.kind == SHOAL_VALUE_DOUBLE && v.data.dnum == 2.25);
    const char *text = "h\xc3\xa9llo";
    v = shoal_value_string(text);
    CHECK(v.kind == SHOAL_VALUE_STRING && v.data.string.data == text && v.data.string.size == 6);
    v = shoal_value_string(NULL);
    CHECK(v.kind == SHOAL_VALUE_NULL);
    v = shoal_value_string_n("abc", 2);
    CHECK(v.kind == SHOAL_VALUE_STRING && v.data.string.size == 2);
    const uint8_t bytes[3] = {0, 1, 2};
    v = shoal_value_binary(bytes, sizeof bytes);
    CHECK(v.kind == SHOAL_VALUE_BINARY && v.data.binary.data == bytes && v.data.binary.size == 3);
    v = shoal_value_timestamp(-5, 7);
    CHECK(v.kind == SHOAL_VALUE_TIMESTAMP && v.data.timestamp.seconds == -5 &&
          v.data.timestamp.nanos == 7);
    v = shoal_value_link("Dog", 9);
    CHECK(v.kind == SHOAL_VALUE_LINK && strcmp(v.data.link.class_name, "Dog") == 0 &&
          v.data.link.key == 9);
}

static void test_error_names_and_last_error(void) {
    static const struct {
        int32_t code;
        const char *name;
    } table[] = {
        {SHOAL_ERR_UNKNOWN, "UNKNOWN"},
        {SHOAL_ERR_IO, "IO"},
        {SHOAL_ERR_JSON, "JSON"},
        {SHOAL_ERR_CLIENT_RESET, "CLIENT_RESET"},
        {SHOAL_ERR_INVALID_ARGUMENT, "INVALID_ARGUMENT"},
        {SHOAL_ERR_WRONG_TYPE, "WRONG_TYPE"},
        {SHOAL_ERR_NOT_IN_WRITE_TRANSACTION, "NOT_IN_WRITE_TRANSACTION"},
        {SHOAL_ERR_ALREADY_IN_WRITE_TRANSACTION, "ALREADY_IN_WRITE_TRANSACTION"},
        {SHOAL_ERR_REALM_CLOSED, "REALM_CLOSED"},
        {SHOAL_ERR_OBJECT_DELETED, "OBJECT_DELETED"},
        {SHOAL_ERR_NO_SUCH_CLASS, "NO_SUCH_CLASS"},
        {SHOAL_ERR_NO_SUCH_PROPERTY, "NO_SUCH_PROPERTY"},
        {SHOAL_ERR_DUPLICATE_PRIMARY_KEY, "DUPLICATE_PRIMARY_KEY"},
        {SHOAL_ERR_MIGRATION_NEEDED, "MIGRATION_NEEDED"},
        {SHOAL_ERR_SCHEMA_VERSION_LOWER, "SCHEMA_VERSION_LOWER"},
        {SHOAL_ERR_SCHEMA_CHANGED_WITHOUT_VERSION_BUMP, "SCHEMA_CHANGED_WITHOUT_VERSION_BUMP"},
        {SHOAL_ERR_READ_ONLY, "READ_ONLY"},
        {SHOAL_ERR_FILE_NOT_FOUND, "FILE_NOT_FOUND"},
        {SHOAL_ERR_FILE_PERMISSION_DENIED, "FILE_PERMISSION_DENIED"},
        {SHOAL_ERR_INCOMPATIBLE_FILE, "INCOMPATIBLE_FILE"},
        {SHOAL_ERR_DECRYPTION_FAILED, "DECRYPTION_FAILED"},
        {SHOAL_ERR_FORMAT_UPGRADE_REQUIRED, "FORMAT_UPGRADE_REQUIRED"},
        {SHOAL_ERR_FILE_IN_USE, "FILE_IN_USE"},
        {SHOAL_ERR_INVALID_QUERY, "INVALID_QUERY"},
        {SHOAL_ERR_MISUSE, "MISUSE"},
        {SHOAL_ERR_INTERNAL, "INTERNAL"},
        {SHOAL_ERR_INDEX_OUT_OF_BOUNDS, "INDEX_OUT_OF_BOUNDS"},
        {SHOAL_ERR_NOT_SUPPORTED, "NOT_SUPPORTED"},
        {SHOAL_ERR_CALLBACK_FAILED, "CALLBACK_FAILED"},
        {SHOAL_ERR_REALM_IN_USE, "REALM_IN_USE"},
        {SHOAL_ERR_HTTP, "HTTP"},
        {SHOAL_ERR_INVALID_PARAMETERS, "INVALID_PARAMETERS"},
        {SHOAL_ERR_MISSING_PARAMETERS, "MISSING_PARAMETERS"},
        {SHOAL_ERR_INVALID_CREDENTIALS, "INVALID_CREDENTIALS"},
        {SHOAL_ERR_UNKNOWN_ACCOUNT, "UNKNOWN_ACCOUNT"},
        {SHOAL_ERR_EXISTING_ACCOUNT, "EXISTING_ACCOUNT"},
        {SHOAL_ERR_ACCESS_DENIED, "ACCESS_DENIED"},
        {SHOAL_ERR_EXPIRED_REFRESH_TOKEN, "EXPIRED_REFRESH_TOKEN"},
        {SHOAL_ERR_MULTIPLE_USERS_LOGGED_IN, "MULTIPLE_USERS_LOGGED_IN"},
        {SHOAL_ERR_TIMEOUT, "TIMEOUT"},
        /* The sync family shares its number with SESSION_CLOSED and keeps the family's name. */
        {SHOAL_ERR_SYNC, "SYNC"},
        {SHOAL_ERR_SESSION_CLOSED, "SYNC"},
        {SHOAL_ERR_CONNECTION_CLOSED, "CONNECTION_CLOSED"},
        {SHOAL_ERR_OTHER_ERROR, "OTHER_ERROR"},
        {SHOAL_ERR_UNKNOWN_MESSAGE, "UNKNOWN_MESSAGE"},
        {SHOAL_ERR_BAD_SYNTAX, "BAD_SYNTAX"},
        {SHOAL_ERR_LIMITS_EXCEEDED, "LIMITS_EXCEEDED"},
        {SHOAL_ERR_WRONG_PROTOCOL_VERSION, "WRONG_PROTOCOL_VERSION"},
        {SHOAL_ERR_BAD_SESSION_IDENT, "BAD_SESSION_IDENT"},
        {SHOAL_ERR_REUSE_OF_SESSION_IDENT, "REUSE_OF_SESSION_IDENT"},
        {SHOAL_ERR_BOUND_IN_OTHER_SESSION, "BOUND_IN_OTHER_SESSION"},
        {SHOAL_ERR_BAD_MESSAGE_ORDER, "BAD_MESSAGE_ORDER"},
        {SHOAL_ERR_OTHER_SESSION_ERROR, "OTHER_SESSION_ERROR"},
        {SHOAL_ERR_TOKEN_EXPIRED, "TOKEN_EXPIRED"},
        {SHOAL_ERR_BAD_AUTHENTICATION, "BAD_AUTHENTICATION"},
        {SHOAL_ERR_ILLEGAL_REALM_PATH, "ILLEGAL_REALM_PATH"},
        {SHOAL_ERR_NO_SUCH_PATH, "NO_SUCH_PATH"},
        {SHOAL_ERR_PERMISSION_DENIED, "PERMISSION_DENIED"},
        {SHOAL_ERR_BAD_SERVER_FILE_IDENT, "BAD_SERVER_FILE_IDENT"},
        {SHOAL_ERR_BAD_CLIENT_FILE_IDENT, "BAD_CLIENT_FILE_IDENT"},
        {SHOAL_ERR_BAD_SERVER_VERSION, "BAD_SERVER_VERSION"},
        {SHOAL_ERR_BAD_CLIENT_VERSION, "BAD_CLIENT_VERSION"},
        {SHOAL_ERR_DIVERGING_HISTORIES, "DIVERGING_HISTORIES"},
        {SHOAL_ERR_BAD_CHANGESET, "BAD_CHANGESET"},
        {SHOAL_ERR_DISABLED_SESSION, "DISABLED_SESSION"},
        /* The client's own connection codes and the last ROS codes (Realm Java's names). */
        {SHOAL_ERR_BAD_ORIGIN_FILE_IDENT, "BAD_ORIGIN_FILE_IDENT"},
        {SHOAL_ERR_BAD_SERVER_VERSION_DOWNLOAD, "BAD_SERVER_VERSION_DOWNLOAD"},
        {SHOAL_ERR_BAD_CHANGESET_DOWNLOAD, "BAD_CHANGESET_DOWNLOAD"},
        {SHOAL_ERR_BAD_REQUEST_IDENT, "BAD_REQUEST_IDENT"},
        {SHOAL_ERR_BAD_ERROR_CODE, "BAD_ERROR_CODE"},
        {SHOAL_ERR_BAD_COMPRESSION, "BAD_COMPRESSION"},
        {SHOAL_ERR_BAD_CLIENT_VERSION_DOWNLOAD, "BAD_CLIENT_VERSION_DOWNLOAD"},
        {110, "BAD_ORIGIN_FILE_IDENT"},
        {116, "BAD_CLIENT_VERSION_DOWNLOAD"},
        {SHOAL_ERR_INVALID_HOST, "INVALID_HOST"},
        {616, "INVALID_HOST"},
        {SHOAL_ERR_SERVER_MISCONFIGURATION, "SERVER_MISCONFIGURATION"},
        {801, "SERVER_MISCONFIGURATION"},
        {117, "UNKNOWN"},
        {214, "UNKNOWN"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) CHECK_STR_EQ(shoal_error_name(table[i].code), table[i].name);
    CHECK_STR_EQ(shoal_error_name(123456), "UNKNOWN");

    /* A failing call sets the last error; shoal_error_name and shoal_get_last_error keep it. */
    CHECK_ERR(!shoal_realm_begin_write(NULL), SHOAL_ERR_MISUSE);
    CHECK_STR_EQ(shoal_error_name(SHOAL_ERR_MISUSE), "MISUSE");
    shoal_error_t e;
    memset(&e, 0, sizeof e);
    CHECK(shoal_get_last_error(&e));
    CHECK_INT_EQ(e.code, SHOAL_ERR_MISUSE);
    CHECK_INT_EQ(e.category, SHOAL_ERR_CATEGORY_LOGIC);
    CHECK(e.message != NULL && strstr(e.message, "realm") != NULL);
    CHECK(e.path == NULL);
    CHECK(shoal_get_last_error(NULL));
    /* Freeing and version queries cannot fail and keep it too. */
    shoal_value_t nothing = shoal_value_null();
    shoal_free(NULL);
    shoal_value_free(&nothing);
    shoal_value_free(NULL);
    CHECK(shoal_libversion() != NULL && shoal_libversion_number() > 0);
    CHECK(shoal_get_last_error(&e));
    CHECK_INT_EQ(e.code, SHOAL_ERR_MISUSE);
    /* shoal_clear_last_error forgets it. */
    shoal_clear_last_error();
    CHECK(!shoal_get_last_error(&e));
    /* Every other call resets it when it starts: a success after a failure leaves no error. */
    CHECK_ERR(!shoal_realm_begin_write(NULL), SHOAL_ERR_MISUSE);
    shoal_schema_t *s = shoal_schema_new();
    CHECK(s != NULL);
    CHECK_NO_ERROR();
    CHECK(shoal_release(s));
    CHECK_NO_ERROR();
}

/* ------------------------------------------------------------------------------------------ */
/* Schemas and configurations                                                                  */

static void test_schema_builder_and_json(void) {
    shoal_schema_t *s = people_schema();
    char *json = shoal_schema_to_json(s);
    CHECK(json != NULL);
    CHECK(strstr(json, "\"Person\"") && strstr(json, "\"Dog\"") && strstr(json, "\"Tag\""));
    CHECK(strstr(json, "\"primary_key\":\"id\"") != NULL);
    CHECK(strstr(json, "\"target\":\"Dog\"") != NULL);

    /* JSON -> schema -> JSON gives the same text. */
    shoal_schema_t *back = shoal_schema_from_json(json);
    CHECK(back != NULL);
    char *json2 = shoal_schema_to_json(back);
    CHECK(json2 != NULL);
    CHECK_STR_EQ(json, json2);

    /* The documented example form (flags may be omitted) parses. */
    shoal_schema_t *doc = shoal_schema_from_json(
        "{\"classes\":[{\"name\":\"Person\",\"primary_key\":\"id\",\"properties\":[{\"name\":\"id\",\"type\":\"int\"},"
        "{\"name\":\"name\",\"type\":\"string\",\"nullable\":true,\"indexed\":true},"
        "{\"name\":\"dogs\",\"type\":\"link\",\"list\":true,\"target\":\"Dog\"}]},"
        "{\"name\":\"Dog\",\"properties\":[{\"name\":\"name\",\"type\":\"string\"}]}]}");
    CHECK(doc != NULL);
    char *doc_json = shoal_schema_to_json(doc);
    CHECK(doc_json != NULL && strstr(doc_json, "\"dogs\"") != NULL);

    /* A realm opened with the JSON schema reports it back. */
    char path[4096];
    shoal_config_t *c = shoal_config_new(path_in(path, "schema-json.realm"));
    CHECK(c != NULL);
    CHECK(shoal_config_set_schema(c, back));
    shoal_realm_t *r = shoal_realm_open(c);
    CHECK(r != NULL);
    char *realm_json = shoal_realm_get_schema_json(r);
    CHECK(realm_json != NULL);
    shoal_schema_t *from_realm = shoal_schema_from_json(realm_json);
    CHECK(from_realm != NULL);
    char *json3 = shoal_schema_to_json(from_realm);
    CHECK(json3 != NULL);
    CHECK_STR_EQ(json3, json);

    /* Builder errors. */
    CHECK_ERR(!shoal_schema_add_class(s, "Person", NULL), SHOAL_ERR_INVALID_ARGUMENT); /* duplicate */
    CHECK_ERR(!shoal_schema_add_class(s, "", NULL), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_schema_add_class(s, "__reserved", NULL), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_schema_add_class(s, NULL, NULL), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_schema_add_property(s, "Nope", "x", SHOAL_PROPERTY_TYPE_INT, 0, NULL), SHOAL_ERR_NO_SUCH_CLASS);
    CHECK_ERR(!shoal_schema_add_property(s, "Person", "age", SHOAL_PROPERTY_TYPE_INT, 0, NULL),
              SHOAL_ERR_INVALID_ARGUMENT); /* duplicate */
    CHECK_ERR(!shoal_schema_add_property(s, "Person", "x", 99, 0, NULL), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_schema_add_property(s, "Person", "x", SHOAL_PROPERTY_TYPE_INT, 0x100, NULL),
              SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_schema_add_property(s, "Person", "x", SHOAL_PROPERTY_TYPE_LINK, 0, NULL),
              SHOAL_ERR_INVALID_ARGUMENT); /* link without target */
    CHECK_ERR(!shoal_schema_add_property(s, "Person", "x", SHOAL_PROPERTY_TYPE_INT, 0, "Dog"),
              SHOAL_ERR_INVALID_ARGUMENT); /* target on a non-link */
    CHECK_ERR(!shoal_schema_add_property(s, "Person", "x", SHOAL_PROPERTY_TYPE_DOUBLE, SHOAL_PROPERTY_INDEXED, NULL),
              SHOAL_ERR_INVALID_ARGUMENT);
    /* The failed calls left the schema as it was. */
    char *json4 = shoal_schema_to_json(s);
    CHECK(json4 != NULL);
    CHECK_STR_EQ(json4, json);

    /* JSON errors. */
    CHECK_ERR(shoal_schema_from_json("{\"classes\": [") == NULL, SHOAL_ERR_JSON);
    CHECK_ERR(shoal_schema_from_json("42") == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_schema_from_json("{\"classes\":[{\"name\":\"A\",\"properties\":[{\"name\":\"x\",\"type\":\"nope\"}]}]}") ==
                  NULL,
              SHOAL_ERR_INVALID_ARGUMENT);
    /* A schema whose link target is missing is invalid for a configuration. */
    shoal_schema_t *dangling = shoal_schema_new();
    CHECK(dangling != NULL);
    CHECK(shoal_schema_add_class(dangling, "A", NULL));
    CHECK(shoal_schema_add_property(dangling, "A", "b", SHOAL_PROPERTY_TYPE_LINK, SHOAL_PROPERTY_NULLABLE, "B"));
    CHECK_ERR(!shoal_config_set_schema(c, dangling), SHOAL_ERR_INVALID_ARGUMENT);

    shoal_free(json);
    shoal_free(json2);
    shoal_free(json3);
    shoal_free(json4);
    shoal_free(doc_json);
    shoal_free(realm_json);
    CHECK(shoal_release(dangling));
    CHECK(shoal_release(from_realm));
    CHECK(shoal_release(doc));
    CHECK(shoal_release(back));
    CHECK(shoal_release(s));
    CHECK(shoal_release(r));
    CHECK(shoal_release(c));
}

static void test_config_setters(void) {
    char path[4096];
    path_in(path, "config.realm");
    shoal_config_t *c = shoal_config_new(path);
    CHECK(c != NULL);
    char *got = shoal_config_get_path(c);
    CHECK_STR_EQ(got, path);
    shoal_free(got);

    shoal_schema_t *s = people_schema();
    CHECK(shoal_config_set_schema(c, s));
    /* The schema was copied: changing the caller's schema afterwards does not affect it. */
    CHECK(shoal_schema_add_class(s, "Later", NULL));
    CHECK(shoal_config_set_schema_version(c, 7));
    CHECK(shoal_config_set_in_memory(c, false));
    CHECK(shoal_config_set_read_only(c, false));
    CHECK(shoal_config_set_delete_if_migration_needed(c, false));
    CHECK(shoal_config_set_initial_data(c, NULL, NULL, NULL));
    CHECK(shoal_config_set_migration(c, NULL, NULL, NULL));

    shoal_realm_t *r = shoal_realm_open(c);
    CHECK(r != NULL);
    uint64_t version = 0;
    CHECK(shoal_realm_get_schema_version(r, &version));
    CHECK_INT_EQ(version, 7);
    char *json = shoal_realm_get_schema_json(r);
    CHECK(json != NULL);
    CHECK(strstr(json, "\"Person\"") != NULL);
    CHECK(strstr(json, "\"Later\"") == NULL);
    shoal_free(json);
    CHECK(file_exists(path));
    CHECK(shoal_release(r));

    /* Read-only: the file opens, writes are refused. */
    shoal_config_t *ro = shoal_config_new(path);
    CHECK(ro != NULL);
    CHECK(shoal_config_set_read_only(ro, true));
    shoal_realm_t *rr = shoal_realm_open(ro);
    CHECK(rr != NULL);
    CHECK_ERR(!shoal_realm_begin_write(rr), SHOAL_ERR_READ_ONLY);
    CHECK(shoal_release(rr));
    /* A read-only open of a missing file fails. */
    char missing[4096];
    shoal_config_t *ro_missing = shoal_config_new(path_in(missing, "missing.realm"));
    CHECK(ro_missing != NULL);
    CHECK(shoal_config_set_read_only(ro_missing, true));
    CHECK_ERR(shoal_realm_open(ro_missing) == NULL, SHOAL_ERR_FILE_NOT_FOUND);
    CHECK(!file_exists(missing));

    /* Bad paths. */
    CHECK_ERR(shoal_config_new("") == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_config_new(NULL) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_config_new("/tmp/bad-\xff\xfe.realm") == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    /* Setting NULL removes the schema. */
    CHECK(shoal_config_set_schema(c, NULL));

    CHECK(shoal_release(ro_missing));
    CHECK(shoal_release(ro));
    CHECK(shoal_release(s));
    CHECK(shoal_release(c));
}

static void test_in_memory_realm(void) {
    char path[4096];
    path_in(path, "memory.realm");
    shoal_config_t *c = people_config("memory.realm");
    CHECK(shoal_config_set_in_memory(c, true));
    shoal_realm_t *r1 = shoal_realm_open(c);
    CHECK(r1 != NULL);
    CHECK(shoal_realm_begin_write(r1));
    shoal_object_t *o = create_person(r1, 1);
    CHECK(shoal_realm_commit(r1));
    CHECK(shoal_release(o));
    /* A second handle of the same in-memory realm shares its data. */
    shoal_realm_t *r2 = shoal_realm_open(c);
    CHECK(r2 != NULL);
    CHECK_INT_EQ(count_objects(r2, "Person"), 1);
    /* Nothing is written to disk. */
    CHECK(!file_exists(path));
    CHECK(shoal_release(r1));
    CHECK(shoal_release(r2));
    /* The data lived only while a handle was open. */
    shoal_realm_t *r3 = shoal_realm_open(c);
    CHECK(r3 != NULL);
    bool empty = false;
    CHECK(shoal_realm_is_empty(r3, &empty));
    CHECK(empty);
    CHECK(shoal_release(r3));
    CHECK(shoal_release(c));
}

/* ------------------------------------------------------------------------------------------ */
/* Initial data and migrations                                                                 */

typedef struct {
    int calls;
    int freed;
    bool saw_transaction;
    int32_t nested_begin_error;
    uint64_t schema_version;
} initial_state_t;

static bool initial_data_cb(void *userdata, shoal_realm_t *realm) {
    initial_state_t *st = userdata;
    st->calls++;
    st->saw_transaction = shoal_realm_is_in_transaction(realm);
    /* The callback runs inside the creating transaction: a second begin fails. */
    shoal_error_t e;
    if (!shoal_realm_begin_write(realm) && shoal_get_last_error(&e)) st->nested_begin_error = e.code;
    if (!shoal_realm_get_schema_version(realm, &st->schema_version)) return false;
    for (int64_t id = 1; id <= 2; id++) {
        shoal_value_t pk = shoal_value_int(id);
        shoal_object_t *o = shoal_object_create(realm, "Person", &pk);
        if (!o) return false;
        shoal_value_t name = shoal_value_string(id == 1 ? "first" : "second");
        bool ok = shoal_object_set(o, "name", &name);
        shoal_release(o);
        if (!ok) return false;
    }
    return true;
}

static void free_initial_state(void *userdata) {
    ((initial_state_t *)userdata)->freed++;
}

static bool failing_initial_data_cb(void *userdata, shoal_realm_t *realm) {
    (void)userdata;
    shoal_value_t pk = shoal_value_int(1);
    /* Fails with NO_SUCH_CLASS, which shoal_realm_open must report. */
    shoal_object_t *o = shoal_object_create(realm, "NoSuchClass", &pk);
    if (!o) return false; /* no other Shoal call: it would reset the last error */
    shoal_release(o);
    return true;
}

static bool false_initial_data_cb(void *userdata, shoal_realm_t *realm) {
    (void)userdata;
    (void)realm;
    return false;
}

static void test_initial_data_runs_once_in_creating_transaction(void) {
    initial_state_t st;
    memset(&st, 0, sizeof st);
    shoal_config_t *c = people_config("initial.realm");
    CHECK(shoal_config_set_schema_version(c, 4));
    CHECK(shoal_config_set_initial_data(c, initial_data_cb, &st, free_initial_state));

    shoal_realm_t *r = shoal_realm_open(c);
    CHECK(r != NULL);
    CHECK_INT_EQ(st.calls, 1);
    CHECK(st.saw_transaction);
    CHECK_INT_EQ(st.nested_begin_error, SHOAL_ERR_ALREADY_IN_WRITE_TRANSACTION);
    CHECK_INT_EQ(st.schema_version, 4);
    CHECK(!shoal_realm_is_in_transaction(r));
    CHECK_INT_EQ(count_objects(r, "Person"), 2);
    shoal_value_t pk = shoal_value_int(2);
    shoal_object_t *second = shoal_object_find(r, "Person", &pk);
    CHECK(second != NULL);
    CHECK_PROP_STR(second, "name", "second");
    CHECK(shoal_release(second));

    /* A second handle on the open file, and a reopen after closing: no second run. */
    shoal_realm_t *r2 = shoal_realm_open(c);
    CHECK(r2 != NULL);
    CHECK(shoal_release(r2));
    CHECK(shoal_release(r));
    r = shoal_realm_open(c);
    CHECK(r != NULL);
    CHECK_INT_EQ(st.calls, 1);
    CHECK_INT_EQ(count_objects(r, "Person"), 2);
    CHECK(shoal_release(r));

    /* free_userdata runs once, when the configuration and its realms are gone. */
    CHECK_INT_EQ(st.freed, 0);
    CHECK(shoal_release(c));
    CHECK_INT_EQ(st.freed, 1);

    /* A failing callback aborts the open with the error of the failing call inside it... */
    shoal_config_t *bad = people_config("initial-bad.realm");
    CHECK(shoal_config_set_initial_data(bad, failing_initial_data_cb, NULL, NULL));
    CHECK_ERR(shoal_realm_open(bad) == NULL, SHOAL_ERR_NO_SUCH_CLASS);
    /* ...or CALLBACK_FAILED when it returned false without a Shoal error. */
    CHECK(shoal_config_set_initial_data(bad, false_initial_data_cb, NULL, NULL));
    CHECK_ERR(shoal_realm_open(bad) == NULL, SHOAL_ERR_CALLBACK_FAILED);
    CHECK(shoal_release(bad));
}

typedef struct {
    int calls;
    int freed;
    uint64_t old_version;
    uint64_t new_version;
    int migrated;
} migration_state_t;

static bool migration_cb(void *userdata, shoal_realm_t *realm, uint64_t old_version, uint64_t new_version) {
    migration_state_t *st = userdata;
    st->calls++;
    st->old_version = old_version;
    st->new_version = new_version;
    shoal_results_t *all = shoal_realm_objects(realm, "Person");
    if (!all) return false;
    int64_t n = shoal_results_count(all);
    bool ok = n >= 0;
    for (int64_t i = 0; ok && i < n; i++) {
        shoal_object_t *o = shoal_results_get(all, (size_t)i);
        shoal_value_t old_name;
        ok = o != NULL && shoal_object_get(o, "name", &old_name); /* an old property */
        if (ok) {
            char buf[128];
            if (old_name.kind == SHOAL_VALUE_STRING)
                snprintf(buf, sizeof buf, "Dr. %s", old_name.data.string.data);
            else
                snprintf(buf, sizeof buf, "Dr. ?");
            shoal_value_t full = shoal_value_string(buf);
            ok = shoal_object_set(o, "full_name", &full); /* a new property */
            shoal_value_free(&old_name);
        }
        if (ok) st->migrated++;
        shoal_release(o);
    }
    shoal_release(all);
    return ok;
}

static void free_migration_state(void *userdata) {
    ((migration_state_t *)userdata)->freed++;
}

/* Person {id: int pk, <prop>: string} at some version. */
static shoal_config_t *versioned_config(const char *path, const char *prop, uint64_t version) {
    shoal_schema_t *s = shoal_schema_new();
    CHECK(s != NULL);
    CHECK(shoal_schema_add_class(s, "Person", "id"));
    CHECK(shoal_schema_add_property(s, "Person", "id", SHOAL_PROPERTY_TYPE_INT, 0, NULL));
    CHECK(shoal_schema_add_property(s, "Person", prop, SHOAL_PROPERTY_TYPE_STRING, 0, NULL));
    shoal_config_t *c = shoal_config_new(path);
    CHECK(c != NULL);
    CHECK(shoal_config_set_schema(c, s));
    CHECK(shoal_config_set_schema_version(c, version));
    CHECK(shoal_release(s));
    return c;
}

static void test_migration_and_delete_if_needed(void) {
    char path[4096];
    path_in(path, "migrate.realm");

    /* Version 1: Person {id, name}. */
    shoal_config_t *v1 = versioned_config(path, "name", 1);
    shoal_realm_t *r = shoal_realm_open(v1);
    CHECK(r != NULL);
    CHECK(shoal_realm_begin_write(r));
    const char *names[] = {"Ann", "Bob"};
    for (int i = 0; i < 2; i++) {
        shoal_object_t *o = create_person(r, i + 1);
        shoal_value_t name = shoal_value_string(names[i]);
        CHECK(shoal_object_set(o, "name", &name));
        CHECK(shoal_release(o));
    }
    CHECK(shoal_realm_commit(r));
    CHECK(shoal_release(r));

    /* Version 2 renames name -> full_name. Without a migration callback: MIGRATION_NEEDED. */
    shoal_config_t *v2 = versioned_config(path, "full_name", 2);
    CHECK_ERR(shoal_realm_open(v2) == NULL, SHOAL_ERR_MIGRATION_NEEDED);
    /* A changed schema with the same version needs a migration too. (The core reports
     * MIGRATION_NEEDED, as Realm does; SCHEMA_CHANGED_WITHOUT_VERSION_BUMP would fit too.) */
    shoal_config_t *v1_changed = versioned_config(path, "full_name", 1);
    CHECK(shoal_realm_open(v1_changed) == NULL);
    shoal_error_t e;
    CHECK(shoal_get_last_error(&e));
    CHECK(e.code == SHOAL_ERR_MIGRATION_NEEDED || e.code == SHOAL_ERR_SCHEMA_CHANGED_WITHOUT_VERSION_BUMP);

    migration_state_t st;
    memset(&st, 0, sizeof st);
    CHECK(shoal_config_set_migration(v2, migration_cb, &st, free_migration_state));
    r = shoal_realm_open(v2);
    CHECK(r != NULL);
    CHECK_INT_EQ(st.calls, 1);
    CHECK_INT_EQ(st.old_version, 1);
    CHECK_INT_EQ(st.new_version, 2);
    CHECK_INT_EQ(st.migrated, 2);
    uint64_t version = 0;
    CHECK(shoal_realm_get_schema_version(r, &version));
    CHECK_INT_EQ(version, 2);
    shoal_value_t pk = shoal_value_int(1);
    shoal_object_t *ann = shoal_object_find(r, "Person", &pk);
    CHECK(ann != NULL);
    CHECK_PROP_STR(ann, "full_name", "Dr. Ann");
    /* The old property is gone after the migration. */
    shoal_value_t v;
    CHECK_ERR(!shoal_object_get(ann, "name", &v), SHOAL_ERR_NO_SUCH_PROPERTY);
    CHECK(shoal_release(ann));
    CHECK(shoal_release(r));

    /* Reopening at the same version does not migrate again. */
    r = shoal_realm_open(v2);
    CHECK(r != NULL);
    CHECK_INT_EQ(st.calls, 1);
    CHECK(shoal_release(r));

    /* A configuration with a lower version than the file's fails, and names the file. */
    CHECK_ERR(shoal_realm_open(v1) == NULL, SHOAL_ERR_SCHEMA_VERSION_LOWER);
    CHECK(shoal_get_last_error(&e));
    CHECK_STR_EQ(e.path, path);

    /* delete-if-migration-needed starts over instead of failing. */
    shoal_config_t *v3 = versioned_config(path, "nickname", 3);
    CHECK_ERR(shoal_realm_open(v3) == NULL, SHOAL_ERR_MIGRATION_NEEDED);
    CHECK(shoal_config_set_delete_if_migration_needed(v3, true));
    r = shoal_realm_open(v3);
    CHECK(r != NULL);
    bool empty = false;
    CHECK(shoal_realm_is_empty(r, &empty));
    CHECK(empty);
    CHECK(shoal_realm_get_schema_version(r, &version));
    CHECK_INT_EQ(version, 3);
    CHECK(shoal_release(r));

    CHECK_INT_EQ(st.freed, 0);
    CHECK(shoal_release(v2));
    CHECK_INT_EQ(st.freed, 1);
    CHECK(shoal_release(v1));
    CHECK(shoal_release(v1_changed));
    CHECK(shoal_release(v3));
}

/* ------------------------------------------------------------------------------------------ */
/* Realms and transactions                                                                     */

static void test_realm_transactions(void) {
    char path[4096];
    path_in(path, "txn.realm");
    shoal_config_t *c = people_config("txn.realm");
    CHECK(shoal_config_set_schema_version(c, 3));
    shoal_realm_t *r = shoal_realm_open(c);
    CHECK(r != NULL);

    CHECK(!shoal_realm_is_in_transaction(r));
    CHECK_NO_ERROR();
    CHECK(!shoal_realm_is_closed(r));
    CHECK_NO_ERROR();
    bool empty = false;
    CHECK(shoal_realm_is_empty(r, &empty));
    CHECK(empty);
    uint64_t sv = 0;
    CHECK(shoal_realm_get_schema_version(r, &sv));
    CHECK_INT_EQ(sv, 3);
    uint64_t v0 = 0, v1 = 0;
    CHECK(shoal_realm_version(r, &v0));

    /* Commit and cancel outside a transaction. */
    CHECK_ERR(!shoal_realm_commit(r), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK_ERR(!shoal_realm_cancel_write(r), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);

    /* begin / commit */
    CHECK(shoal_realm_begin_write(r));
    CHECK(shoal_realm_is_in_transaction(r));
    CHECK_ERR(!shoal_realm_begin_write(r), SHOAL_ERR_ALREADY_IN_WRITE_TRANSACTION);
    CHECK(shoal_realm_is_in_transaction(r));
    shoal_object_t *o = create_person(r, 1);
    shoal_value_t name = shoal_value_string("Committed");
    CHECK(shoal_object_set(o, "name", &name));
    /* Inside a write, refresh does nothing. */
    bool changed = true;
    CHECK(shoal_realm_refresh(r, &changed));
    CHECK(!changed);
    CHECK(shoal_realm_commit(r));
    CHECK(!shoal_realm_is_in_transaction(r));
    CHECK(shoal_realm_is_empty(r, &empty));
    CHECK(!empty);
    CHECK(shoal_realm_version(r, &v1));
    CHECK(v1 > v0);

    /* begin / cancel: the write is discarded. */
    CHECK(shoal_realm_begin_write(r));
    shoal_object_t *gone = create_person(r, 2);
    CHECK_INT_EQ(count_objects(r, "Person"), 2);
    CHECK(shoal_realm_cancel_write(r));
    CHECK(!shoal_realm_is_in_transaction(r));
    CHECK_INT_EQ(count_objects(r, "Person"), 1);
    CHECK(!shoal_object_is_valid(gone));
    CHECK_NO_ERROR();
    uint64_t v2 = 0;
    CHECK(shoal_realm_version(r, &v2));
    CHECK_INT_EQ(v2, v1);

    /* A commit without changes is fine. */
    CHECK(shoal_realm_begin_write(r));
    CHECK(shoal_realm_commit(r));

    /* Refresh with nothing new. */
    changed = true;
    CHECK(shoal_realm_refresh(r, &changed));
    CHECK(!changed);
    CHECK(shoal_realm_refresh(r, NULL));

    /* The dump names the committed data, not the cancelled one. */
    char *dump = shoal_realm_dump_json(r);
    CHECK(dump != NULL);
    CHECK(strstr(dump, "Committed") != NULL);
    CHECK(strstr(dump, "\"Person\"") != NULL);
    shoal_free(dump);

    /* Close: the handle stays releasable, every other call reports REALM_CLOSED. */
    shoal_realm_t *clone = shoal_clone(r);
    CHECK(clone != NULL);
    CHECK(shoal_realm_begin_write(r));
    CHECK(shoal_realm_close(r));
    CHECK(shoal_realm_is_closed(r));
    CHECK(shoal_realm_is_closed(clone));
    CHECK(!shoal_realm_is_in_transaction(r));
    CHECK(shoal_realm_close(r)); /* closing twice is harmless */
    CHECK_ERR(!shoal_realm_begin_write(clone), SHOAL_ERR_REALM_CLOSED);
    CHECK_ERR(!shoal_realm_refresh(r, NULL), SHOAL_ERR_REALM_CLOSED);
    CHECK_ERR(!shoal_realm_is_empty(r, &empty), SHOAL_ERR_REALM_CLOSED);
    CHECK_ERR(shoal_realm_dump_json(r) == NULL, SHOAL_ERR_REALM_CLOSED);
    CHECK_ERR(shoal_realm_objects(r, "Person") == NULL, SHOAL_ERR_REALM_CLOSED);
    shoal_value_t v;
    CHECK_ERR(!shoal_object_get(o, "name", &v), SHOAL_ERR_REALM_CLOSED);

    /* The closed write transaction was cancelled: another handle can write at once. */
    shoal_realm_t *r2 = shoal_realm_open(c);
    CHECK(r2 != NULL);
    CHECK(shoal_realm_begin_write(r2));
    CHECK(shoal_realm_cancel_write(r2));

    CHECK(shoal_release(r2));
    CHECK(shoal_release(gone));
    CHECK(shoal_release(o));
    CHECK(shoal_release(clone));
    CHECK(shoal_release(r));
    CHECK(shoal_release(c));
}

static void test_two_handles_on_one_file(void) {
    shoal_config_t *c = people_config("two.realm");
    shoal_realm_t *a = shoal_realm_open(c);
    CHECK(a != NULL);
    shoal_realm_t *b = shoal_realm_open(c);
    CHECK(b != NULL);

    /* b reads its snapshot until it refreshes. */
    CHECK_INT_EQ(count_objects(b, "Person"), 0);
    shoal_results_t *b_people = shoal_realm_objects(b, "Person");
    CHECK(b_people != NULL);
    CHECK_INT_EQ(shoal_results_count(b_people), 0);

    CHECK(shoal_realm_begin_write(a));
    /* A second write transaction on this thread through another handle would wait for itself. */
    CHECK_ERR(!shoal_realm_begin_write(b), SHOAL_ERR_ALREADY_IN_WRITE_TRANSACTION);
    CHECK(!shoal_realm_is_in_transaction(b));
    shoal_object_t *o = create_person(a, 42);
    CHECK(shoal_realm_commit(a));

    CHECK_INT_EQ(count_objects(b, "Person"), 0);
    shoal_value_t pk = shoal_value_int(42);
    CHECK(shoal_object_find(b, "Person", &pk) == NULL);
    CHECK_NO_ERROR();
    bool changed = false;
    CHECK(shoal_realm_refresh(b, &changed));
    CHECK(changed);
    CHECK_INT_EQ(count_objects(b, "Person"), 1);
    CHECK_INT_EQ(shoal_results_count(b_people), 1); /* live results follow the refresh */
    shoal_object_t *seen = shoal_object_find(b, "Person", &pk);
    CHECK(seen != NULL);
    CHECK(shoal_release(seen));
    changed = true;
    CHECK(shoal_realm_refresh(b, &changed));
    CHECK(!changed);

    /* And the other way round: b writes (begin_write moves it to the latest), a refreshes. */
    CHECK(shoal_realm_begin_write(b));
    CHECK_ERR(!shoal_realm_begin_write(a), SHOAL_ERR_ALREADY_IN_WRITE_TRANSACTION);
    shoal_object_t *o2 = create_person(b, 43);
    CHECK(shoal_realm_commit(b));
    CHECK_INT_EQ(count_objects(a, "Person"), 1);
    CHECK(shoal_realm_refresh(a, &changed));
    CHECK(changed);
    CHECK_INT_EQ(count_objects(a, "Person"), 2);
    uint64_t va = 0, vb = 0;
    CHECK(shoal_realm_version(a, &va));
    CHECK(shoal_realm_version(b, &vb));
    CHECK_INT_EQ(va, vb);

    CHECK(shoal_release(o2));
    CHECK(shoal_release(o));
    CHECK(shoal_release(b_people));
    CHECK(shoal_release(a));
    CHECK(shoal_release(b));
    CHECK(shoal_release(c));
}

/* ------------------------------------------------------------------------------------------ */
/* Objects                                                                                     */

static void test_object_create_find_primary_keys(void) {
    shoal_realm_t *r = open_people("objects.realm");
    CHECK(shoal_realm_begin_write(r));

    shoal_object_t *p = create_person(r, 7);
    shoal_value_t pk = shoal_value_int(7);
    CHECK_ERR(shoal_object_create(r, "Person", &pk) == NULL, SHOAL_ERR_DUPLICATE_PRIMARY_KEY);

    const char *code = "caf\xc3\xa9-\xf0\x9f\x90\x9f"; /* "café-🐟" */
    shoal_value_t spk = shoal_value_string(code);
    shoal_object_t *t = shoal_object_create(r, "Tag", &spk);
    CHECK(t != NULL);
    CHECK_ERR(shoal_object_create(r, "Tag", &spk) == NULL, SHOAL_ERR_DUPLICATE_PRIMARY_KEY);
    CHECK_PROP_STR(t, "code", code);

    /* Primary key errors. */
    shoal_value_t wrong = shoal_value_string("7");
    CHECK_ERR(shoal_object_create(r, "Person", &wrong) == NULL, SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(shoal_object_create(r, "Person", NULL) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_object_create(r, "Dog", &pk) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_object_create(r, "Nope", &pk) == NULL, SHOAL_ERR_NO_SUCH_CLASS);
    shoal_object_t *d1 = shoal_object_create(r, "Dog", NULL);
    shoal_object_t *d2 = shoal_object_create(r, "Dog", NULL);
    CHECK(d1 != NULL && d2 != NULL);
    uint64_t k1 = 0, k2 = 0;
    CHECK(shoal_object_key(d1, &k1));
    CHECK(shoal_object_key(d2, &k2));
    CHECK(k1 != k2);
    CHECK(shoal_realm_commit(r));

    /* find: found, and NULL without an error when missing. */
    shoal_object_t *found = shoal_object_find(r, "Person", &pk);
    CHECK(found != NULL);
    CHECK_NO_ERROR();
    uint64_t kp = 0, kf = 0;
    CHECK(shoal_object_key(p, &kp));
    CHECK(shoal_object_key(found, &kf));
    CHECK_INT_EQ(kp, kf);
    char *cls = shoal_object_class_name(found);
    CHECK_STR_EQ(cls, "Person");
    shoal_free(cls);
    shoal_value_t missing = shoal_value_int(8);
    CHECK(shoal_object_find(r, "Person", &missing) == NULL);
    CHECK_NO_ERROR();

    shoal_object_t *tf = shoal_object_find(r, "Tag", &spk);
    CHECK(tf != NULL);
    shoal_value_t missing_s = shoal_value_string("cafe");
    CHECK(shoal_object_find(r, "Tag", &missing_s) == NULL);
    CHECK_NO_ERROR();

    /* find errors. */
    CHECK_ERR(shoal_object_find(r, "Person", &spk) == NULL, SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(shoal_object_find(r, "Tag", &pk) == NULL, SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(shoal_object_find(r, "Dog", &pk) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_object_find(r, "Nope", &pk) == NULL, SHOAL_ERR_NO_SUCH_CLASS);
    CHECK_ERR(shoal_object_find(r, "Person", NULL) == NULL, SHOAL_ERR_INVALID_ARGUMENT);

    /* Clones are separate handles to the same object. */
    shoal_object_t *pc = shoal_clone(p);
    CHECK(pc != NULL && pc != (void *)p);
    uint64_t kc = 0;
    CHECK(shoal_object_key(pc, &kc));
    CHECK_INT_EQ(kc, kp);
    CHECK(shoal_release(pc));
    CHECK(shoal_object_is_valid(p));

    CHECK(shoal_release(tf));
    CHECK(shoal_release(found));
    CHECK(shoal_release(d1));
    CHECK(shoal_release(d2));
    CHECK(shoal_release(t));
    CHECK(shoal_release(p));
    CHECK(shoal_release(r));
}

static void test_object_values_of_every_kind(void) {
    shoal_realm_t *r = open_people("values.realm");
    CHECK(shoal_realm_begin_write(r));
    shoal_object_t *p = create_person(r, 1);
    shoal_object_t *dog = shoal_object_create(r, "Dog", NULL);
    CHECK(dog != NULL);
    shoal_value_t dog_name = shoal_value_string("Rex");
    CHECK(shoal_object_set(dog, "name", &dog_name));

    /* Defaults: zero values for required properties, NULL for nullable ones. */
    CHECK_INT_EQ(GET_INT(p, "age"), 0);
    CHECK_PROP_STR(p, "nick", "");
    CHECK_PROP_NULL(p, "name");
    CHECK_PROP_NULL(p, "born");
    CHECK_PROP_NULL(p, "photo");
    CHECK_PROP_NULL(p, "dog");

    shoal_value_t v;
    /* bool */
    shoal_value_t b = shoal_value_bool(true);
    CHECK(shoal_object_set(p, "active", &b));
    CHECK(shoal_object_get(p, "active", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_BOOL);
    CHECK(v.data.boolean == true);
    /* int: the extremes survive */
    shoal_value_t i = shoal_value_int(INT64_MIN);
    CHECK(shoal_object_set(p, "age", &i));
    CHECK(GET_INT(p, "age") == INT64_MIN);
    i = shoal_value_int(INT64_MAX);
    CHECK(shoal_object_set(p, "age", &i));
    CHECK(GET_INT(p, "age") == INT64_MAX);
    /* float */
    shoal_value_t f = shoal_value_float(1.25f);
    CHECK(shoal_object_set(p, "ratio", &f));
    CHECK(shoal_object_get(p, "ratio", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_FLOAT);
    CHECK(v.data.fnum == 1.25f);
    /* double */
    shoal_value_t d = shoal_value_double(-3.141592653589793);
    CHECK(shoal_object_set(p, "score", &d));
    CHECK(shoal_object_get(p, "score", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_DOUBLE);
    CHECK(v.data.dnum == -3.141592653589793);
    /* string with multi-byte UTF-8 */
    const char *utf8 = "Zo\xc3\xab \xf0\x9f\x90\x9f \xe6\x97\xa5\xe6\x9c\xac"; /* "Zoë 🐟 日本" */
    shoal_value_t s = shoal_value_string(utf8);
    CHECK(shoal_object_set(p, "name", &s));
    CHECK_PROP_STR(p, "name", utf8);
    /* a string value is (pointer, size): not NUL-terminated, and may hold a NUL byte */
    const char with_nul[] = {'a', '\0', 'b', 'X'};
    shoal_value_t sn = shoal_value_string_n(with_nul, 3);
    CHECK(shoal_object_set(p, "nick", &sn));
    CHECK_PROP_STRN(p, "nick", with_nul, 3);
    shoal_value_t empty_s = shoal_value_string_n(NULL, 0);
    CHECK(shoal_object_set(p, "nick", &empty_s));
    CHECK_PROP_STR(p, "nick", "");
    /* binary with a 0 byte inside */
    const uint8_t bytes[] = {0x01, 0x00, 0xff, 0x00, 0x7f};
    shoal_value_t bin = shoal_value_binary(bytes, sizeof bytes);
    CHECK(shoal_object_set(p, "photo", &bin));
    CHECK(shoal_object_get(p, "photo", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_BINARY);
    CHECK_INT_EQ(v.data.binary.size, sizeof bytes);
    CHECK(memcmp(v.data.binary.data, bytes, sizeof bytes) == 0);
    shoal_value_free(&v);
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_NULL); /* shoal_value_free resets the value */
    /* an empty binary is not NULL */
    shoal_value_t empty_b = shoal_value_binary(NULL, 0);
    CHECK(shoal_object_set(p, "photo", &empty_b));
    CHECK(shoal_object_get(p, "photo", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_BINARY);
    CHECK_INT_EQ(v.data.binary.size, 0);
    shoal_value_free(&v);
    /* timestamp, after and before 1970 */
    shoal_value_t ts = shoal_value_timestamp(1700000000, 123456789);
    CHECK(shoal_object_set(p, "born", &ts));
    CHECK(shoal_object_get(p, "born", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_TIMESTAMP);
    CHECK_INT_EQ(v.data.timestamp.seconds, 1700000000);
    CHECK_INT_EQ(v.data.timestamp.nanos, 123456789);
    ts = shoal_value_timestamp(-86400, 0);
    CHECK(shoal_object_set(p, "born", &ts));
    CHECK(shoal_object_get(p, "born", &v));
    CHECK_INT_EQ(v.data.timestamp.seconds, -86400);
    CHECK_INT_EQ(v.data.timestamp.nanos, 0);
    /* link, through shoal_object_as_link */
    shoal_value_t link;
    CHECK(shoal_object_as_link(dog, &link));
    CHECK_INT_EQ(link.kind, SHOAL_VALUE_LINK);
    CHECK_STR_EQ(link.data.link.class_name, "Dog");
    uint64_t dog_key = 0;
    CHECK(shoal_object_key(dog, &dog_key));
    CHECK_INT_EQ(link.data.link.key, dog_key);
    CHECK(shoal_object_set(p, "dog", &link));
    shoal_value_free(&link);
    CHECK(shoal_object_get(p, "dog", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_LINK);
    CHECK_STR_EQ(v.data.link.class_name, "Dog");
    CHECK_INT_EQ(v.data.link.key, dog_key);
    shoal_value_free(&v);
    shoal_object_t *linked = shoal_object_get_linked(p, "dog");
    CHECK(linked != NULL);
    CHECK_PROP_STR(linked, "name", "Rex");
    CHECK(shoal_release(linked));
    /* a link to an object of the wrong class */
    shoal_value_t person_link;
    CHECK(shoal_object_as_link(p, &person_link));
    CHECK_ERR(!shoal_object_set(p, "dog", &person_link), SHOAL_ERR_WRONG_TYPE);
    shoal_value_free(&person_link);
    CHECK(shoal_realm_commit(r));

    /* Everything reads back after the commit, through a second handle too. */
    shoal_realm_t *r2 = open_people("values.realm");
    shoal_value_t pk = shoal_value_int(1);
    shoal_object_t *p2 = shoal_object_find(r2, "Person", &pk);
    CHECK(p2 != NULL);
    CHECK_PROP_STR(p2, "name", utf8);
    CHECK(shoal_object_get(p2, "photo", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_BINARY);
    shoal_value_free(&v);
    CHECK(GET_INT(p2, "age") == INT64_MAX);
    CHECK(shoal_object_get(p2, "dog", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_LINK);
    CHECK_INT_EQ(v.data.link.key, dog_key);
    shoal_value_free(&v);

    /* NULL: allowed for nullable properties and links, WRONG_TYPE for required ones. */
    CHECK(shoal_realm_begin_write(r));
    shoal_value_t null = shoal_value_null();
    CHECK(shoal_object_set(p, "name", &null));
    CHECK(shoal_object_set(p, "photo", &null));
    CHECK(shoal_object_set(p, "born", &null));
    CHECK(shoal_object_set(p, "dog", &null));
    CHECK_PROP_NULL(p, "name");
    CHECK_PROP_NULL(p, "photo");
    CHECK_PROP_NULL(p, "born");
    CHECK_PROP_NULL(p, "dog");
    CHECK(shoal_object_get_linked(p, "dog") == NULL);
    CHECK_NO_ERROR();
    CHECK_ERR(!shoal_object_set(p, "nick", &null), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_object_set(p, "age", &null), SHOAL_ERR_WRONG_TYPE);
    /* Wrong types. */
    CHECK_ERR(!shoal_object_set(p, "age", &s), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_object_set(p, "active", &i), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_object_set(p, "name", &i), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_object_set(p, "photo", &s), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_object_set(p, "born", &i), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_object_set(p, "dog", &i), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_object_set(p, "tags", &s), SHOAL_ERR_WRONG_TYPE); /* a list */
    CHECK_ERR(!shoal_object_get(p, "tags", &v), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(shoal_object_get_linked(p, "age") == NULL, SHOAL_ERR_WRONG_TYPE);
    /* The primary key cannot change. */
    shoal_value_t other_pk = shoal_value_int(2);
    CHECK_ERR(!shoal_object_set(p, "id", &other_pk), SHOAL_ERR_INVALID_ARGUMENT);
    /* Unknown properties. */
    CHECK_ERR(!shoal_object_set(p, "nope", &i), SHOAL_ERR_NO_SUCH_PROPERTY);
    CHECK_ERR(!shoal_object_get(p, "nope", &v), SHOAL_ERR_NO_SUCH_PROPERTY);
    CHECK(shoal_realm_cancel_write(r));

    CHECK(shoal_release(p2));
    CHECK(shoal_release(r2));
    CHECK(shoal_release(dog));
    CHECK(shoal_release(p));
    CHECK(shoal_release(r));
}

static void test_property_keys_and_add_int(void) {
    shoal_realm_t *r = open_people("keys.realm");
    shoal_property_key_t age, name, dog_name;
    CHECK(shoal_realm_property_key(r, "Person", "age", &age));
    CHECK(shoal_realm_property_key(r, "Person", "name", &name));
    CHECK(shoal_realm_property_key(r, "Dog", "name", &dog_name));
    CHECK(age.class_key == name.class_key);
    CHECK(age.property_key != name.property_key);
    CHECK(dog_name.class_key != name.class_key);
    CHECK_ERR(!shoal_realm_property_key(r, "Nope", "age", &age), SHOAL_ERR_NO_SUCH_CLASS);
    CHECK_ERR(!shoal_realm_property_key(r, "Person", "nope", &age), SHOAL_ERR_NO_SUCH_PROPERTY);
    CHECK_ERR(!shoal_realm_property_key(r, "Person", "age", NULL), SHOAL_ERR_INVALID_ARGUMENT);

    CHECK(shoal_realm_begin_write(r));
    shoal_object_t *p = create_person(r, 1);
    for (int64_t n = 0; n < 100; n++) {
        shoal_value_t v = shoal_value_int(n * 3);
        CHECK(shoal_object_set_by_key(p, age, &v));
        shoal_value_t out;
        CHECK(shoal_object_get_by_key(p, age, &out));
        CHECK_INT_EQ(out.kind, SHOAL_VALUE_INT);
        CHECK_INT_EQ(out.data.integer, n * 3);
    }
    shoal_value_t s = shoal_value_string("by key");
    CHECK(shoal_object_set_by_key(p, name, &s));
    CHECK_PROP_STR(p, "name", "by key");
    CHECK_ERR(!shoal_object_set_by_key(p, age, &s), SHOAL_ERR_WRONG_TYPE);
    /* A key of another class. */
    shoal_value_t out;
    CHECK_ERR(!shoal_object_get_by_key(p, dog_name, &out), SHOAL_ERR_INVALID_ARGUMENT);

    /* add_int */
    shoal_value_t ten = shoal_value_int(10);
    CHECK(shoal_object_set(p, "counter", &ten));
    CHECK(shoal_object_add_int(p, "counter", 5));
    CHECK(shoal_object_add_int(p, "counter", -2));
    CHECK_INT_EQ(GET_INT(p, "counter"), 13);
    CHECK_ERR(!shoal_object_add_int(p, "name", 1), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_object_add_int(p, "nope", 1), SHOAL_ERR_NO_SUCH_PROPERTY);
    CHECK(shoal_realm_commit(r));
    CHECK_INT_EQ(GET_INT(p, "counter"), 13);
    CHECK_ERR(!shoal_object_add_int(p, "counter", 1), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK_ERR(!shoal_object_set_by_key(p, age, &ten), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK_INT_EQ(GET_INT(p, "counter"), 13);

    CHECK(shoal_release(p));
    CHECK(shoal_release(r));
}

static void test_object_delete_and_dangling_links(void) {
    shoal_realm_t *r = open_people("delete.realm");
    CHECK(shoal_realm_begin_write(r));
    shoal_object_t *p = create_person(r, 1);
    shoal_object_t *rex = shoal_object_create(r, "Dog", NULL);
    shoal_object_t *fido = shoal_object_create(r, "Dog", NULL);
    CHECK(rex != NULL && fido != NULL);
    shoal_value_t link_rex, link_fido;
    CHECK(shoal_object_as_link(rex, &link_rex));
    CHECK(shoal_object_as_link(fido, &link_fido));
    CHECK(shoal_object_set(p, "dog", &link_rex));
    shoal_list_t *dogs = shoal_object_get_list(p, "dogs");
    CHECK(dogs != NULL);
    CHECK(shoal_list_insert(dogs, 0, &link_rex));
    CHECK(shoal_list_insert(dogs, 1, &link_fido));
    CHECK(shoal_list_insert(dogs, 2, &link_rex));
    shoal_value_free(&link_rex);
    shoal_value_free(&link_fido);
    CHECK(shoal_realm_commit(r));

    CHECK_ERR(!shoal_object_delete(rex), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK(shoal_object_is_valid(rex));

    shoal_object_t *rex2 = shoal_clone(rex);
    CHECK(rex2 != NULL);
    CHECK(shoal_realm_begin_write(r));
    CHECK(shoal_object_delete(rex));
    CHECK(shoal_realm_commit(r));

    CHECK(!shoal_object_is_valid(rex));
    CHECK_NO_ERROR();
    CHECK(!shoal_object_is_valid(rex2));
    shoal_value_t v;
    CHECK_ERR(!shoal_object_get(rex, "name", &v), SHOAL_ERR_OBJECT_DELETED);
    CHECK_ERR(!shoal_object_get(rex2, "age", &v), SHOAL_ERR_OBJECT_DELETED);
    CHECK(shoal_realm_begin_write(r));
    shoal_value_t n = shoal_value_string("x");
    CHECK_ERR(!shoal_object_set(rex, "name", &n), SHOAL_ERR_OBJECT_DELETED);
    CHECK_ERR(!shoal_object_delete(rex), SHOAL_ERR_OBJECT_DELETED);
    CHECK(shoal_realm_cancel_write(r));

    /* The link became NULL and the list entries naming the dog vanished. */
    CHECK_PROP_NULL(p, "dog");
    CHECK(shoal_object_get_linked(p, "dog") == NULL);
    CHECK_NO_ERROR();
    CHECK_INT_EQ(shoal_list_size(dogs), 1);
    CHECK(shoal_list_get(dogs, 0, &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_LINK);
    uint64_t fido_key = 0;
    CHECK(shoal_object_key(fido, &fido_key));
    CHECK_INT_EQ(v.data.link.key, fido_key);
    shoal_value_free(&v);
    CHECK_INT_EQ(count_objects(r, "Dog"), 1);

    /* Deleting the owner: its list handle reports OBJECT_DELETED. */
    CHECK(shoal_realm_begin_write(r));
    CHECK(shoal_object_delete(p));
    CHECK(shoal_realm_commit(r));
    CHECK_ERR(shoal_list_size(dogs) == -1, SHOAL_ERR_OBJECT_DELETED);
    CHECK_ERR(shoal_object_get_list(p, "dogs") == NULL, SHOAL_ERR_OBJECT_DELETED);
    CHECK(shoal_object_is_valid(fido));

    /* Deleted handles are still released normally. */
    CHECK(shoal_release(dogs));
    CHECK(shoal_release(rex2));
    CHECK(shoal_release(rex));
    CHECK(shoal_release(fido));
    CHECK(shoal_release(p));
    CHECK(shoal_release(r));
}

/* ------------------------------------------------------------------------------------------ */
/* Lists                                                                                       */

/* Checks a string list's content, e.g. "a,b,c". */
#define CHECK_STR_LIST(list, expected) check_str_list_at(__FILE__, __LINE__, (list), (expected))
static void check_str_list_at(const char *file, int line, const shoal_list_t *l, const char *expected) {
    int64_t n = shoal_list_size(l);
    if (n < 0) check_failf(file, line, "shoal_list_size failed");
    char got[512] = "";
    for (int64_t i = 0; i < n; i++) {
        shoal_value_t v;
        if (!shoal_list_get(l, (size_t)i, &v)) check_failf(file, line, "shoal_list_get(%" PRId64 ")", i);
        if (v.kind != SHOAL_VALUE_STRING) check_failf(file, line, "element %" PRId64 " is not a string", i);
        size_t len = strlen(got);
        snprintf(got + len, sizeof got - len, "%s%s", i ? "," : "", v.data.string.data);
        shoal_value_free(&v);
    }
    if (strcmp(got, expected) != 0) check_failf(file, line, "list is [%s], expected [%s]", got, expected);
}

static void test_lists(void) {
    shoal_realm_t *r = open_people("lists.realm");
    CHECK(shoal_realm_begin_write(r));
    shoal_object_t *p = create_person(r, 1);
    shoal_list_t *tags = shoal_object_get_list(p, "tags");
    CHECK(tags != NULL);
    CHECK_INT_EQ(shoal_list_size(tags), 0);

    shoal_value_t a = shoal_value_string("a"), b = shoal_value_string("b"), c = shoal_value_string("c"), B = shoal_value_string("B");
    CHECK(shoal_list_insert(tags, 0, &b));
    CHECK(shoal_list_insert(tags, 0, &a));
    CHECK(shoal_list_insert(tags, 2, &c)); /* index == size appends */
    CHECK_STR_LIST(tags, "a,b,c");
    CHECK(shoal_list_set(tags, 1, &B));
    CHECK_STR_LIST(tags, "a,B,c");
    CHECK(shoal_list_move(tags, 0, 2));
    CHECK_STR_LIST(tags, "B,c,a");
    CHECK(shoal_list_move(tags, 2, 0));
    CHECK_STR_LIST(tags, "a,B,c");
    CHECK(shoal_list_erase(tags, 1));
    CHECK_STR_LIST(tags, "a,c");

    /* Out of bounds. */
    shoal_value_t v;
    CHECK_ERR(!shoal_list_get(tags, 2, &v), SHOAL_ERR_INDEX_OUT_OF_BOUNDS);
    CHECK_ERR(!shoal_list_insert(tags, 3, &a), SHOAL_ERR_INDEX_OUT_OF_BOUNDS);
    CHECK_ERR(!shoal_list_set(tags, 2, &a), SHOAL_ERR_INDEX_OUT_OF_BOUNDS);
    CHECK_ERR(!shoal_list_erase(tags, 2), SHOAL_ERR_INDEX_OUT_OF_BOUNDS);
    CHECK_ERR(!shoal_list_move(tags, 0, 2), SHOAL_ERR_INDEX_OUT_OF_BOUNDS);
    CHECK_ERR(!shoal_list_move(tags, 5, 0), SHOAL_ERR_INDEX_OUT_OF_BOUNDS);
    /* Wrong element types. */
    shoal_value_t one = shoal_value_int(1), null = shoal_value_null();
    CHECK_ERR(!shoal_list_insert(tags, 0, &one), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_list_set(tags, 0, &null), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_list_get(tags, 0, NULL), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_STR_LIST(tags, "a,c");
    /* Not a list / not a property. */
    CHECK_ERR(shoal_object_get_list(p, "name") == NULL, SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(shoal_object_get_list(p, "nope") == NULL, SHOAL_ERR_NO_SUCH_PROPERTY);

    /* A list of links. */
    shoal_list_t *dogs = shoal_object_get_list(p, "dogs");
    CHECK(dogs != NULL);
    uint64_t keys[3];
    for (int i = 0; i < 3; i++) {
        shoal_object_t *d = shoal_object_create(r, "Dog", NULL);
        CHECK(d != NULL);
        CHECK(shoal_object_key(d, &keys[i]));
        shoal_value_t link;
        CHECK(shoal_object_as_link(d, &link));
        CHECK(shoal_list_insert(dogs, (size_t)i, &link));
        shoal_value_free(&link);
        CHECK(shoal_release(d));
    }
    CHECK_ERR(!shoal_list_insert(dogs, 0, &null), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_list_insert(dogs, 0, &a), SHOAL_ERR_WRONG_TYPE);
    CHECK(shoal_list_move(dogs, 0, 1));
    CHECK(shoal_list_get(dogs, 0, &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_LINK);
    CHECK_STR_EQ(v.data.link.class_name, "Dog");
    CHECK_INT_EQ(v.data.link.key, keys[1]);
    shoal_value_free(&v);
    CHECK(shoal_realm_commit(r));

    /* After the commit, through a fresh handle of the list. */
    shoal_list_t *tags2 = shoal_object_get_list(p, "tags");
    CHECK(tags2 != NULL);
    CHECK_STR_LIST(tags2, "a,c");
    CHECK_INT_EQ(shoal_list_size(dogs), 3);
    /* Writes need a transaction. */
    CHECK_ERR(!shoal_list_insert(tags, 0, &a), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK_ERR(!shoal_list_set(tags, 0, &a), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK_ERR(!shoal_list_erase(tags, 0), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK_ERR(!shoal_list_move(tags, 0, 1), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK_ERR(!shoal_list_clear(tags), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK_STR_LIST(tags, "a,c");

    CHECK(shoal_realm_begin_write(r));
    CHECK(shoal_list_clear(tags));
    CHECK(shoal_list_clear(dogs));
    CHECK_INT_EQ(shoal_list_size(tags), 0);
    CHECK(shoal_realm_commit(r));
    CHECK_INT_EQ(shoal_list_size(tags2), 0);
    CHECK_INT_EQ(shoal_list_size(dogs), 0);
    CHECK_INT_EQ(count_objects(r, "Dog"), 3); /* clearing a link list keeps the targets */

    CHECK(shoal_release(tags2));
    CHECK(shoal_release(dogs));
    CHECK(shoal_release(tags));
    CHECK(shoal_release(p));
    CHECK(shoal_release(r));
}

/* ------------------------------------------------------------------------------------------ */
/* Queries and results                                                                         */

static const uint8_t k_photo[] = {1, 0, 2};

/*
 * id name    age score  active born  photo    dog   dogs
 *  1 "Ann"    31  2.5   true   1000  {1,0,2}  Rex   [Rex, Fido]
 *  2 "bob"    25  1.0   false  2000  NULL     Fido  [Fido]
 *  3 "Carol"  40 -3.25  true   NULL  NULL     NULL  []
 *  4 NULL     18  7.0   false  NULL  NULL     NULL  []
 *  5 "anna"   31  2.5   true   3000  NULL     Spot  [Rex, Fido, Spot]
 * Dogs: Rex 3, Fido 5, Spot 1.
 */
static shoal_realm_t *open_query_fixture(const char *name) {
    shoal_realm_t *r = open_people(name);
    CHECK(shoal_realm_begin_write(r));
    const char *dog_names[] = {"Rex", "Fido", "Spot"};
    const int64_t dog_ages[] = {3, 5, 1};
    shoal_value_t dog_links[3];
    for (int i = 0; i < 3; i++) {
        shoal_object_t *d = shoal_object_create(r, "Dog", NULL);
        CHECK(d != NULL);
        shoal_value_t n = shoal_value_string(dog_names[i]), a = shoal_value_int(dog_ages[i]);
        CHECK(shoal_object_set(d, "name", &n));
        CHECK(shoal_object_set(d, "age", &a));
        CHECK(shoal_object_as_link(d, &dog_links[i]));
        CHECK(shoal_release(d));
    }
    struct {
        const char *name;
        int64_t age;
        double score;
        bool active;
        int64_t born; /* 0 = NULL */
        int dog;      /* -1 = NULL */
        const char *dogs;
    } rows[] = {
        {"Ann", 31, 2.5, true, 1000, 0, "01"}, {"bob", 25, 1.0, false, 2000, 1, "1"},
        {"Carol", 40, -3.25, true, 0, -1, ""}, {NULL, 18, 7.0, false, 0, -1, ""},
        {"anna", 31, 2.5, true, 3000, 2, "012"},
    };
    for (int i = 0; i < 5; i++) {
        shoal_object_t *p = create_person(r, i + 1);
        shoal_value_t v = rows[i].name ? shoal_value_string(rows[i].name) : shoal_value_null();
        CHECK(shoal_object_set(p, "name", &v));
        v = shoal_value_int(rows[i].age);
        CHECK(shoal_object_set(p, "age", &v));
        v = shoal_value_double(rows[i].score);
        CHECK(shoal_object_set(p, "score", &v));
        v = shoal_value_float((float)(i + 1) / 2.0f);
        CHECK(shoal_object_set(p, "ratio", &v));
        v = shoal_value_bool(rows[i].active);
        CHECK(shoal_object_set(p, "active", &v));
        if (rows[i].born) {
            v = shoal_value_timestamp(rows[i].born, 0);
            CHECK(shoal_object_set(p, "born", &v));
        }
        if (i == 0) {
            v = shoal_value_binary(k_photo, sizeof k_photo);
            CHECK(shoal_object_set(p, "photo", &v));
        }
        if (rows[i].dog >= 0) CHECK(shoal_object_set(p, "dog", &dog_links[rows[i].dog]));
        shoal_list_t *dogs = shoal_object_get_list(p, "dogs");
        CHECK(dogs != NULL);
        for (size_t j = 0; rows[i].dogs[j]; j++) CHECK(shoal_list_insert(dogs, j, &dog_links[rows[i].dogs[j] - '0']));
        CHECK(shoal_release(dogs));
        CHECK(shoal_release(p));
    }
    for (int i = 0; i < 3; i++) shoal_value_free(&dog_links[i]);
    CHECK(shoal_realm_commit(r));
    return r;
}

static void test_queries(void) {
    shoal_realm_t *r = open_query_fixture("queries.realm");

    EXPECT_QUERY(r, "TRUEPREDICATE", NULL, 0, "1,2,3,4,5");
    /* $n arguments of several kinds */
    shoal_value_t a_int = shoal_value_int(31);
    EXPECT_QUERY(r, "age == $0", &a_int, 1, "1,5");
    shoal_value_t a_two[] = {shoal_value_int(30), shoal_value_bool(true)};
    EXPECT_QUERY(r, "age >= $0 AND active == $1", a_two, 2, "1,3,5");
    EXPECT_QUERY(r, "active == $1 AND age < $0", a_two, 2, "");
    shoal_value_t a_double = shoal_value_double(2.0);
    EXPECT_QUERY(r, "score < $0", &a_double, 1, "2,3");
    shoal_value_t a_float = shoal_value_float(1.0f);
    EXPECT_QUERY(r, "ratio <= $0", &a_float, 1, "1,2");
    shoal_value_t a_str = shoal_value_string("bob");
    EXPECT_QUERY(r, "name == $0", &a_str, 1, "2");
    shoal_value_t a_null = shoal_value_null();
    EXPECT_QUERY(r, "name == $0", &a_null, 1, "4");
    shoal_value_t a_ts = shoal_value_timestamp(1500, 0);
    EXPECT_QUERY(r, "born > $0", &a_ts, 1, "2,5");
    shoal_value_t a_bin = shoal_value_binary(k_photo, sizeof k_photo);
    EXPECT_QUERY(r, "photo == $0", &a_bin, 1, "1");
    /* comparisons, nil, boolean logic, parentheses */
    EXPECT_QUERY(r, "age != 31", NULL, 0, "2,3,4");
    EXPECT_QUERY(r, "age > 25 AND age <= 40", NULL, 0, "1,3,5");
    EXPECT_QUERY(r, "name == nil", NULL, 0, "4");
    EXPECT_QUERY(r, "NOT (age == 31) OR name == nil", NULL, 0, "2,3,4");
    EXPECT_QUERY(r, "(age < 20 OR age > 35) AND active == false", NULL, 0, "4");
    /* string operators, [c] */
    EXPECT_QUERY(r, "name == 'ann'", NULL, 0, "");
    EXPECT_QUERY(r, "name ==[c] 'ANN'", NULL, 0, "1");
    EXPECT_QUERY(r, "name BEGINSWITH 'Ann'", NULL, 0, "1");
    EXPECT_QUERY(r, "name BEGINSWITH[c] 'ann'", NULL, 0, "1,5");
    EXPECT_QUERY(r, "name ENDSWITH[c] 'OL'", NULL, 0, "3");
    EXPECT_QUERY(r, "name CONTAINS 'nn'", NULL, 0, "1,5");
    EXPECT_QUERY(r, "name CONTAINS[c] 'B'", NULL, 0, "2");
    shoal_value_t a_sub = shoal_value_string("NN");
    EXPECT_QUERY(r, "name CONTAINS[c] $0", &a_sub, 1, "1,5");
    EXPECT_QUERY(r, "name LIKE '?ob'", NULL, 0, "2");
    EXPECT_QUERY(r, "name LIKE 'A*'", NULL, 0, "1");
    EXPECT_QUERY(r, "name LIKE[c] 'a*'", NULL, 0, "1,5");
    EXPECT_QUERY(r, "name LIKE '*r*l'", NULL, 0, "3");
    /* paths through links, @count */
    EXPECT_QUERY(r, "dog.name == 'Rex'", NULL, 0, "1");
    shoal_value_t a_fido = shoal_value_string("Fido");
    EXPECT_QUERY(r, "dog.name == $0", &a_fido, 1, "2");
    EXPECT_QUERY(r, "dog.age > 2", NULL, 0, "1,2");
    EXPECT_QUERY(r, "dogs.@count > 1", NULL, 0, "1,5");
    EXPECT_QUERY(r, "dogs.@count == 0", NULL, 0, "3,4");
    shoal_value_t a_one = shoal_value_int(1);
    EXPECT_QUERY(r, "dogs.@count == $0", &a_one, 1, "2");

    /* Errors. */
    CHECK_ERR(shoal_realm_query(r, "Person", "age >>> 3", NULL, 0) == NULL, SHOAL_ERR_INVALID_QUERY);
    CHECK_ERR(shoal_realm_query(r, "Person", "nope == 3", NULL, 0) == NULL, SHOAL_ERR_INVALID_QUERY);
    CHECK_ERR(shoal_realm_query(r, "Person", "age == $1", &a_int, 1) == NULL, SHOAL_ERR_INVALID_QUERY);
    CHECK_ERR(shoal_realm_query(r, "Person", "age == 'old'", NULL, 0) == NULL, SHOAL_ERR_INVALID_QUERY);
    CHECK_ERR(shoal_realm_query(r, "Person", "age == $0", &a_str, 1) == NULL, SHOAL_ERR_INVALID_QUERY);
    CHECK_ERR(shoal_realm_query(r, "Person", "age == 3 AND", NULL, 0) == NULL, SHOAL_ERR_INVALID_QUERY);
    CHECK_ERR(shoal_realm_query(r, "Person", "", NULL, 0) == NULL, SHOAL_ERR_INVALID_QUERY);
    CHECK_ERR(shoal_realm_query(r, "Nope", "TRUEPREDICATE", NULL, 0) == NULL, SHOAL_ERR_NO_SUCH_CLASS);
    CHECK_ERR(shoal_realm_query(r, "Person", "age == $0", NULL, 1) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_realm_query(r, "Person", "age == $0", NULL, SIZE_MAX) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_realm_query(r, "Person", "name == '\xff'", NULL, 0) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_realm_query(r, "Person", NULL, NULL, 0) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_realm_objects(r, "Nope") == NULL, SHOAL_ERR_NO_SUCH_CLASS);

    CHECK(shoal_release(r));
}

static void test_results(void) {
    shoal_realm_t *r = open_query_fixture("results.realm");
    shoal_results_t *all = shoal_realm_objects(r, "Person");
    CHECK(all != NULL);
    CHECK_INT_EQ(shoal_results_count(all), 5);
    char ids[256];

    /* get */
    shoal_object_t *first = shoal_results_get(all, 0);
    CHECK(first != NULL);
    CHECK(shoal_release(first));
    CHECK_ERR(shoal_results_get(all, 5) == NULL, SHOAL_ERR_INDEX_OUT_OF_BOUNDS);

    /* sort / sort_by / distinct (new results; the original is unchanged) */
    shoal_results_t *by_age = shoal_results_sort(all, "age", true);
    CHECK(by_age != NULL);
    ids_csv(by_age, false, ids, sizeof ids);
    CHECK(strncmp(ids, "4,2,", 4) == 0);
    CHECK(strcmp(ids + strlen(ids) - 2, ",3") == 0);
    shoal_results_t *by_age_desc = shoal_results_sort(all, "age", false);
    CHECK(by_age_desc != NULL);
    ids_csv(by_age_desc, false, ids, sizeof ids);
    CHECK(strncmp(ids, "3,", 2) == 0);
    CHECK(strcmp(ids + strlen(ids) - 2, ",4") == 0);
    const char *keys[] = {"age", "id"};
    const bool asc[] = {true, false};
    shoal_results_t *sorted = shoal_results_sort_by(all, keys, asc, 2);
    CHECK(sorted != NULL);
    ids_csv(sorted, false, ids, sizeof ids);
    CHECK_STR_EQ(ids, "4,2,5,1,3");
    const bool desc_asc[] = {false, true};
    shoal_results_t *sorted2 = shoal_results_sort_by(all, keys, desc_asc, 2);
    CHECK(sorted2 != NULL);
    ids_csv(sorted2, false, ids, sizeof ids);
    CHECK_STR_EQ(ids, "3,1,5,2,4");
    shoal_results_t *by_dog = shoal_results_sort(all, "dog.name", true);
    CHECK(by_dog != NULL);
    CHECK_INT_EQ(shoal_results_count(by_dog), 5);
    /* distinct keeps the first object of each value in the results' order (sorted: 4,2,5,1,3). */
    shoal_results_t *distinct_age = shoal_results_distinct(sorted, "age");
    CHECK(distinct_age != NULL);
    ids_csv(distinct_age, false, ids, sizeof ids);
    CHECK_INT_EQ(strlen(ids), strlen("4,2,5,3"));
    /* Steps apply in the order they were asked for: the distinct keeps the first object in
     * sorted order. */
    CHECK_STR_EQ(ids, "4,2,5,3");
    shoal_results_t *distinct_active = shoal_results_distinct(all, "active");
    CHECK(distinct_active != NULL);
    CHECK_INT_EQ(shoal_results_count(distinct_active), 2);
    /* An unknown property fails, with the code the aggregates use for it. */
    CHECK_ERR(shoal_results_sort(all, "nope", true) == NULL, SHOAL_ERR_NO_SUCH_PROPERTY);
    CHECK_ERR(shoal_results_distinct(all, "nope") == NULL, SHOAL_ERR_NO_SUCH_PROPERTY);
    CHECK_ERR(shoal_results_sort_by(all, NULL, NULL, 1) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_results_sort_by(all, NULL, NULL, SIZE_MAX) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(shoal_results_count(all), 5);

    /* aggregates */
    shoal_value_t v;
    CHECK(shoal_results_min(all, "age", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_INT);
    CHECK_INT_EQ(v.data.integer, 18);
    CHECK(shoal_results_max(all, "age", &v));
    CHECK_INT_EQ(v.data.integer, 40);
    CHECK(shoal_results_sum(all, "age", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_INT);
    CHECK_INT_EQ(v.data.integer, 145);
    CHECK(shoal_results_average(all, "age", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_DOUBLE);
    CHECK(v.data.dnum == 29.0);
    CHECK(shoal_results_min(all, "score", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_DOUBLE);
    CHECK(v.data.dnum == -3.25);
    CHECK(shoal_results_sum(all, "score", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_DOUBLE);
    CHECK(v.data.dnum == 9.75);
    CHECK(shoal_results_max(all, "ratio", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_FLOAT);
    CHECK(v.data.fnum == 2.5f);
    CHECK(shoal_results_min(all, "born", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_TIMESTAMP);
    CHECK_INT_EQ(v.data.timestamp.seconds, 1000);
    CHECK_ERR(!shoal_results_min(all, "name", &v), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_results_sum(all, "born", &v), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_results_min(all, "tags", &v), SHOAL_ERR_WRONG_TYPE);
    CHECK_ERR(!shoal_results_max(all, "nope", &v), SHOAL_ERR_NO_SUCH_PROPERTY);
    CHECK_ERR(!shoal_results_min(all, "age", NULL), SHOAL_ERR_INVALID_ARGUMENT);
    /* ...over a query, and over nothing */
    shoal_value_t arg = shoal_value_bool(true);
    shoal_results_t *active = shoal_realm_query(r, "Person", "active == $0", &arg, 1);
    CHECK(active != NULL);
    CHECK(shoal_results_sum(active, "age", &v));
    CHECK_INT_EQ(v.data.integer, 102);
    shoal_results_t *none = shoal_realm_query(r, "Person", "age > 1000", NULL, 0);
    CHECK(none != NULL);
    CHECK_INT_EQ(shoal_results_count(none), 0);
    CHECK(shoal_results_min(none, "age", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_NULL);
    CHECK(shoal_results_average(none, "age", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_NULL);
    CHECK(shoal_results_sum(none, "age", &v));
    CHECK_INT_EQ(v.kind, SHOAL_VALUE_INT);
    CHECK_INT_EQ(v.data.integer, 0);
    CHECK_ERR(shoal_results_get(none, 0) == NULL, SHOAL_ERR_INDEX_OUT_OF_BOUNDS);

    /* Results are live. */
    CHECK(shoal_realm_begin_write(r));
    shoal_object_t *p6 = create_person(r, 6);
    CHECK_INT_EQ(shoal_results_count(all), 6);
    CHECK_INT_EQ(shoal_results_count(sorted), 6);
    CHECK(shoal_realm_cancel_write(r));
    CHECK_INT_EQ(shoal_results_count(all), 5);

    /* delete_all */
    shoal_results_t *young = shoal_realm_query(r, "Person", "age < 30", NULL, 0);
    CHECK(young != NULL);
    CHECK_ERR(shoal_results_delete_all(young) == -1, SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK(shoal_realm_begin_write(r));
    CHECK_INT_EQ(shoal_results_delete_all(young), 2);
    CHECK(shoal_realm_commit(r));
    CHECK_INT_EQ(shoal_results_count(young), 0);
    CHECK_INT_EQ(shoal_results_count(all), 3);
    ids_csv(all, true, ids, sizeof ids);
    CHECK_STR_EQ(ids, "1,3,5");
    CHECK(shoal_realm_begin_write(r));
    CHECK_INT_EQ(shoal_results_delete_all(none), 0);
    CHECK(shoal_realm_commit(r));

    CHECK(shoal_release(p6));
    CHECK(shoal_release(young));
    CHECK(shoal_release(none));
    CHECK(shoal_release(active));
    CHECK(shoal_release(distinct_active));
    CHECK(shoal_release(distinct_age));
    CHECK(shoal_release(by_dog));
    CHECK(shoal_release(sorted2));
    CHECK(shoal_release(sorted));
    CHECK(shoal_release(by_age_desc));
    CHECK(shoal_release(by_age));
    CHECK(shoal_release(all));
    CHECK(shoal_release(r));
}

/* ------------------------------------------------------------------------------------------ */
/* Change callbacks across threads                                                             */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    uint64_t last_version;
    int freed;
    int calls_after_free;
    /* A realm handle the callback uses to call back into Shoal (NULL: none). */
    shoal_realm_t *probe;
    bool probe_ok;
    uint64_t probe_version;
} change_state_t;

static void change_state_init(change_state_t *s, shoal_realm_t *probe) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->probe = probe;
    s->probe_ok = true;
}

static void change_state_destroy(change_state_t *s) {
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

static void on_change(void *userdata, uint64_t version) {
    change_state_t *s = userdata;
    /* Callbacks may call Shoal: refresh a realm and read its version. */
    bool ok = true;
    uint64_t seen = 0;
    if (s->probe) ok = shoal_realm_refresh(s->probe, NULL) && shoal_realm_version(s->probe, &seen);
    pthread_mutex_lock(&s->mu);
    if (s->freed) s->calls_after_free++;
    s->calls++;
    s->last_version = version;
    if (!ok) s->probe_ok = false;
    if (seen > s->probe_version) s->probe_version = seen;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void free_change_state(void *userdata) {
    change_state_t *s = userdata;
    pthread_mutex_lock(&s->mu);
    s->freed++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

enum { WAIT_SECONDS = 20 };

/* Waits (up to WAIT_SECONDS) until the callback saw `version`; false on timeout. */
static bool wait_for_version(change_state_t *s, uint64_t version) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_SECONDS;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->last_version < version && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&s->cv, &s->mu, &deadline);
    bool ok = s->last_version >= version;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* Waits (up to WAIT_SECONDS) until free_userdata ran; false on timeout. */
static bool wait_for_free(change_state_t *s) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_SECONDS;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->freed == 0 && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&s->cv, &s->mu, &deadline);
    bool ok = s->freed > 0;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static int change_calls(change_state_t *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->calls;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static int change_freed(change_state_t *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->freed;
    pthread_mutex_unlock(&s->mu);
    return n;
}

typedef struct {
    const char *path;
    int64_t id;
    bool ok;
    int32_t error;
    uint64_t version; /* the version its commit produced */
} writer_t;

/* A thread that opens its own realm handle (no schema: the file's), creates one Person and
 * commits. */
static void *writer_main(void *arg) {
    writer_t *w = arg;
    shoal_config_t *c = shoal_config_new(w->path);
    shoal_realm_t *r = c ? shoal_realm_open(c) : NULL;
    shoal_value_t pk = shoal_value_int(w->id);
    shoal_object_t *o = NULL;
    w->ok = r && shoal_realm_begin_write(r) && (o = shoal_object_create(r, "Person", &pk)) != NULL &&
            shoal_realm_commit(r) && shoal_realm_version(r, &w->version);
    shoal_error_t e;
    if (!w->ok && shoal_get_last_error(&e)) w->error = e.code;
    shoal_release(o);
    shoal_release(r);
    shoal_release(c);
    return NULL;
}

static void run_writer(writer_t *w) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, writer_main, w) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    if (!w->ok) check_failf(__FILE__, __LINE__, "writer thread failed with %s", shoal_error_name(w->error));
}

static int g_null_cb_freed;
static void count_null_cb_free(void *userdata) {
    (void)userdata;
    g_null_cb_freed++;
}

static void test_change_callbacks_across_threads(void) {
    char path[4096];
    path_in(path, "notify.realm");
    shoal_realm_t *r = open_people("notify.realm");
    shoal_realm_t *probe = open_people("notify.realm");

    change_state_t first, second;
    change_state_init(&first, probe);
    change_state_init(&second, NULL);

    shoal_token_t *token = shoal_realm_add_change_callback(r, on_change, &first, free_change_state);
    CHECK(token != NULL);

    /* A commit on another thread through another realm handle fires it. */
    writer_t w1 = {path, 1, false, 0, 0};
    run_writer(&w1);
    CHECK(w1.version > 0);
    CHECK(wait_for_version(&first, w1.version));
    CHECK(change_calls(&first) >= 1);
    pthread_mutex_lock(&first.mu);
    bool probe_ok = first.probe_ok;
    uint64_t probe_version = first.probe_version;
    pthread_mutex_unlock(&first.mu);
    CHECK(probe_ok);
    CHECK(probe_version >= w1.version);
    /* So does a commit on this thread. */
    CHECK(shoal_realm_begin_write(r));
    shoal_object_t *o = create_person(r, 2);
    CHECK(shoal_realm_commit(r));
    uint64_t v2 = 0;
    CHECK(shoal_realm_version(r, &v2));
    CHECK(v2 > w1.version);
    CHECK(wait_for_version(&first, v2));

    /* Releasing the token unregisters the callback; free_userdata runs exactly once. */
    CHECK_INT_EQ(change_freed(&first), 0);
    CHECK(shoal_release(token));
    CHECK(wait_for_free(&first));
    int calls_at_release = change_calls(&first);

    /* Proof that it no longer fires: a callback registered now sees the next commit, and
     * callbacks of one commit run in one pass, so the first one would have run by then. */
    shoal_token_t *token2 = shoal_realm_add_change_callback(r, on_change, &second, free_change_state);
    CHECK(token2 != NULL);
    writer_t w3 = {path, 3, false, 0, 0};
    run_writer(&w3);
    CHECK(wait_for_version(&second, w3.version));
    writer_t w4 = {path, 4, false, 0, 0};
    run_writer(&w4);
    CHECK(wait_for_version(&second, w4.version));
    CHECK_INT_EQ(change_calls(&first), calls_at_release);
    CHECK_INT_EQ(change_freed(&first), 1);
    pthread_mutex_lock(&first.mu);
    int after_free = first.calls_after_free;
    pthread_mutex_unlock(&first.mu);
    CHECK_INT_EQ(after_free, 0);

    /* The writes are visible here after a refresh. */
    CHECK(shoal_realm_refresh(r, NULL));
    CHECK_INT_EQ(count_objects(r, "Person"), 4);

    CHECK(shoal_release(token2));
    CHECK(wait_for_free(&second));
    CHECK_INT_EQ(change_freed(&second), 1);
    CHECK_ERR(!shoal_release(token2), SHOAL_ERR_MISUSE);

    /* A failed registration frees the userdata before returning. */
    g_null_cb_freed = 0;
    CHECK_ERR(shoal_realm_add_change_callback(r, NULL, NULL, count_null_cb_free) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(g_null_cb_freed, 1);
    CHECK_ERR(shoal_realm_add_change_callback(NULL, on_change, NULL, count_null_cb_free) == NULL, SHOAL_ERR_MISUSE);
    CHECK_INT_EQ(g_null_cb_freed, 2);
    shoal_realm_t *closed = open_people("notify.realm");
    CHECK(shoal_realm_close(closed));
    CHECK_ERR(shoal_realm_add_change_callback(closed, on_change, NULL, count_null_cb_free) == NULL,
              SHOAL_ERR_REALM_CLOSED);
    CHECK_INT_EQ(g_null_cb_freed, 3);
    CHECK(shoal_release(closed));

    CHECK(shoal_release(o));
    CHECK(shoal_release(probe));
    CHECK(shoal_release(r));
    change_state_destroy(&first);
    change_state_destroy(&second);
}

/* ------------------------------------------------------------------------------------------ */
/* Misuse and bad input                                                                        */

/* ---- fine-grained notifications, delivered on this thread through a scheduler ---- */

typedef struct {
    int calls;
    bool on_main_thread;
    bool initial, collection_deleted, deleted;
    size_t del[16], ins[16], mod[16], nd, ni, nm;
    shoal_move_t moves[16];
    size_t nmoves;
    char names[4][32];
    size_t nnames;
    int freed;
} observed_t;

static pthread_t g_main_thread;
static int g_wake_pipe[2];

static void wake_app(void *userdata) {
    (void)userdata;
    char x = 'x';
    ssize_t n = write(g_wake_pipe[1], &x, 1);
    (void)n;
}

/* Waits for the scheduler's wake-up, then runs the queued work here; returns how many ran. */
static size_t wait_and_perform(shoal_scheduler_t *s) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += 30;
    char buf[64];
    for (;;) {
        ssize_t n = read(g_wake_pipe[0], buf, sizeof buf);
        if (n > 0) break;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > deadline.tv_sec) return 0;
        struct timespec pause = {0, 2000000};
        nanosleep(&pause, NULL);
    }
    size_t ran = 0;
    CHECK(shoal_scheduler_perform_work(s, &ran));
    return ran;
}

static void copy_indices(size_t *dst, size_t *n, const size_t *src, size_t len) {
    *n = len < 16 ? len : 16;
    for (size_t i = 0; i < *n; i++) dst[i] = src[i];
}

static void on_collection(void *userdata, const shoal_collection_changes_t *c) {
    observed_t *o = userdata;
    o->calls++;
    o->on_main_thread = pthread_equal(pthread_self(), g_main_thread);
    o->initial = c->initial;
    o->collection_deleted = c->collection_deleted;
    copy_indices(o->del, &o->nd, c->deletions, c->num_deletions);
    copy_indices(o->ins, &o->ni, c->insertions, c->num_insertions);
    copy_indices(o->mod, &o->nm, c->modifications, c->num_modifications);
    o->nmoves = c->num_moves < 16 ? c->num_moves : 16;
    for (size_t i = 0; i < o->nmoves; i++) o->moves[i] = c->moves[i];
}

static void on_object(void *userdata, const shoal_object_changes_t *c) {
    observed_t *o = userdata;
    o->calls++;
    o->on_main_thread = pthread_equal(pthread_self(), g_main_thread);
    o->initial = c->initial;
    o->deleted = c->deleted;
    o->nnames = c->num_changed < 4 ? c->num_changed : 4;
    for (size_t i = 0; i < o->nnames; i++) {
        snprintf(o->names[i], sizeof o->names[i], "%s", c->changed_names[i]);
    }
}

static void observed_free(void *userdata) {
    ((observed_t *)userdata)->freed++;
}

static void set_age(shoal_realm_t *r, int64_t id, int64_t age) {
    shoal_value_t pk = shoal_value_int(id);
    shoal_object_t *o = shoal_object_find(r, "Person", &pk);
    CHECK(o != NULL);
    shoal_value_t v = shoal_value_int(age);
    CHECK(shoal_object_set(o, "age", &v));
    CHECK(shoal_release(o));
}

static void test_fine_grained_notifications_on_the_app_thread(void) {
    g_main_thread = pthread_self();
    CHECK(pipe(g_wake_pipe) == 0);
    CHECK(fcntl(g_wake_pipe[0], F_SETFL, O_NONBLOCK) == 0);
    shoal_scheduler_t *sched = shoal_scheduler_new(wake_app, NULL, NULL);
    CHECK(sched != NULL);
    CHECK_ERR(shoal_scheduler_new(NULL, NULL, NULL) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    shoal_config_t *c = people_config("fine.realm");
    CHECK(shoal_config_set_scheduler(c, sched));
    CHECK_ERR(!shoal_config_set_scheduler(c, NULL), SHOAL_ERR_MISUSE);
    shoal_realm_t *r = shoal_realm_open(c);
    CHECK(r != NULL);
    CHECK(shoal_release(c));

    /* ids 1..4, ages 10 20 30 40 */
    CHECK(shoal_realm_begin_write(r));
    for (int64_t id = 1; id <= 4; id++) {
        shoal_object_t *p = create_person(r, id);
        shoal_value_t age = shoal_value_int(id * 10);
        CHECK(shoal_object_set(p, "age", &age));
        if (id == 1) {
            shoal_list_t *tags = shoal_object_get_list(p, "tags");
            const char *t[] = {"a", "b", "c", "d"};
            for (size_t i = 0; i < 4; i++) {
                shoal_value_t v = shoal_value_string(t[i]);
                CHECK(shoal_list_insert(tags, i, &v));
            }
            CHECK(shoal_release(tags));
        }
        CHECK(shoal_release(p));
    }
    CHECK(shoal_realm_commit(r));

    shoal_value_t ten = shoal_value_int(10);
    shoal_results_t *adults = shoal_realm_query(r, "Person", "age > $0", &ten, 1);
    CHECK(adults != NULL);
    observed_t res = {0};
    shoal_token_t *rt = shoal_results_observe(adults, on_collection, &res, observed_free);
    CHECK(rt != NULL);
    CHECK_INT_EQ(res.calls, 0);
    CHECK(wait_and_perform(sched) >= 1);
    CHECK_INT_EQ(res.calls, 1);
    CHECK(res.initial);
    CHECK(res.on_main_thread);

    /* Old [2 3 4]: delete 3, modify 4, 1 enters. New [1 2 4]. */
    CHECK(shoal_realm_begin_write(r));
    shoal_value_t three = shoal_value_int(3);
    shoal_object_t *p3 = shoal_object_find(r, "Person", &three);
    CHECK(shoal_object_delete(p3));
    CHECK(shoal_release(p3));
    set_age(r, 4, 41);
    set_age(r, 1, 11);
    CHECK(shoal_realm_commit(r));
    CHECK(wait_and_perform(sched) >= 1);
    CHECK_INT_EQ(res.calls, 2);
    CHECK(!res.initial);
    CHECK(res.on_main_thread);
    CHECK(res.nd == 1 && res.del[0] == 1);
    CHECK(res.ni == 1 && res.ins[0] == 0);
    CHECK(res.nm == 1 && res.mod[0] == 2);
    CHECK_INT_EQ(shoal_results_count(adults), 3);

    /* A list move, and an object's changed property names. */
    shoal_value_t one = shoal_value_int(1);
    shoal_object_t *p1 = shoal_object_find(r, "Person", &one);
    CHECK(p1 != NULL);
    shoal_list_t *tags = shoal_object_get_list(p1, "tags");
    observed_t lst = {0}, obj = {0};
    shoal_token_t *lt = shoal_list_observe(tags, on_collection, &lst, observed_free);
    shoal_token_t *ot = shoal_object_observe(p1, on_object, &obj, observed_free);
    CHECK(lt != NULL && ot != NULL);
    CHECK(wait_and_perform(sched) >= 1);
    CHECK(lst.initial && obj.initial);
    CHECK(shoal_realm_begin_write(r));
    CHECK(shoal_list_move(tags, 0, 3));
    shoal_value_t ann = shoal_value_string("Ann");
    CHECK(shoal_object_set(p1, "name", &ann));
    CHECK(shoal_realm_commit(r));
    CHECK(wait_and_perform(sched) >= 1);
    CHECK(lst.nmoves == 1 && lst.moves[0].from == 0 && lst.moves[0].to == 3);
    CHECK(lst.nd == 1 && lst.del[0] == 0 && lst.ni == 1 && lst.ins[0] == 3);
    CHECK(obj.nnames == 2);
    CHECK(strcmp(obj.names[0], "name") == 0 && strcmp(obj.names[1], "tags") == 0);
    CHECK(obj.on_main_thread && lst.on_main_thread);
    /* The object's deletion ends both. */
    CHECK(shoal_realm_begin_write(r));
    CHECK(shoal_object_delete(p1));
    CHECK(shoal_realm_commit(r));
    CHECK(wait_and_perform(sched) >= 1);
    CHECK(obj.deleted);
    CHECK(lst.collection_deleted && lst.nd == 4);

    /* Bad input: NULL callbacks and handles free the userdata and fail cleanly. */
    observed_t bad = {0};
    CHECK_ERR(shoal_results_observe(adults, NULL, &bad, observed_free) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_list_observe(NULL, on_collection, &bad, observed_free) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_object_observe((shoal_object_t *)adults, on_object, &bad, observed_free) == NULL,
              SHOAL_ERR_MISUSE);
    CHECK_INT_EQ(bad.freed, 3);

    CHECK(shoal_release(rt));
    CHECK(shoal_release(lt));
    CHECK(shoal_release(ot));
    CHECK(shoal_release(tags));
    CHECK(shoal_release(p1));
    CHECK(shoal_release(adults));
    CHECK(shoal_release(r));
    /* Work still queued holds nothing alive; draining it runs no released callback. */
    size_t ran = 0;
    CHECK(shoal_scheduler_perform_work(sched, &ran));
    CHECK(shoal_release(sched));
    CHECK_INT_EQ(res.freed, 1);
    CHECK_INT_EQ(lst.freed, 1);
    CHECK_INT_EQ(obj.freed, 1);
    close(g_wake_pipe[0]);
    close(g_wake_pipe[1]);
}

static void test_null_released_and_wrong_handles(void) {
    shoal_value_t v;
    bool flag;
    uint64_t u;
    /* NULL handles */
    CHECK_ERR(!shoal_realm_begin_write(NULL), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_realm_commit(NULL), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_realm_is_in_transaction(NULL), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_realm_is_empty(NULL, &flag), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_realm_get_schema_version(NULL, &u), SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_realm_open(NULL) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_object_create(NULL, "Person", NULL) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_object_get(NULL, "name", &v), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_object_is_valid(NULL), SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_list_size(NULL) == -1, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_results_count(NULL) == -1, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_realm_query(NULL, "Person", "TRUEPREDICATE", NULL, 0) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_schema_add_class(NULL, "A", NULL), SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_schema_to_json(NULL) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_config_set_schema_version(NULL, 1), SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_config_get_path(NULL) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_delete_realm_files(NULL), SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_clone(NULL) == NULL, SHOAL_ERR_MISUSE);
    /* NULL is a no-op for the free functions. */
    CHECK(shoal_release(NULL));
    CHECK_NO_ERROR();
    shoal_free(NULL);
    shoal_value_free(NULL);

    /* A released handle (nothing is allocated between the release and the reuse). */
    shoal_schema_t *s = shoal_schema_new();
    CHECK(s != NULL);
    CHECK(shoal_release(s));
    CHECK_ERR(!shoal_schema_add_class(s, "A", NULL), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_release(s), SHOAL_ERR_MISUSE); /* double release */
    shoal_realm_t *r = open_people("misuse.realm");
    shoal_realm_t *r2 = shoal_clone(r);
    CHECK(r2 != NULL);
    CHECK(shoal_release(r2));
    CHECK_ERR(!shoal_realm_begin_write(r2), SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_realm_get_schema_json(r2) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_release(r2), SHOAL_ERR_MISUSE);
    CHECK(!shoal_realm_is_in_transaction(r)); /* the other handle is unaffected */
    CHECK_NO_ERROR();
    /* A pointer Shoal never returned. */
    int not_a_handle = 0;
    CHECK_ERR(!shoal_realm_begin_write((shoal_realm_t *)&not_a_handle), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_release(&not_a_handle), SHOAL_ERR_MISUSE);
    CHECK_INT_EQ(not_a_handle, 0);

    /* The wrong kind of handle. */
    CHECK(shoal_realm_begin_write(r));
    shoal_object_t *o = create_person(r, 1);
    shoal_list_t *l = shoal_object_get_list(o, "tags");
    CHECK(l != NULL);
    CHECK(shoal_realm_commit(r));
    shoal_results_t *res = shoal_realm_objects(r, "Person");
    CHECK(res != NULL);
    CHECK_ERR(!shoal_realm_begin_write((shoal_realm_t *)o), SHOAL_ERR_MISUSE);
    shoal_error_t e;
    CHECK(shoal_get_last_error(&e));
    CHECK(strstr(e.message, "object") != NULL);
    CHECK_ERR(shoal_results_count((shoal_results_t *)r) == -1, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_list_size((shoal_list_t *)res) == -1, SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_object_get((shoal_object_t *)l, "name", &v), SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_realm_open((shoal_config_t *)r) == NULL, SHOAL_ERR_MISUSE);
    shoal_schema_t *schema = people_schema();
    CHECK_ERR(shoal_realm_open((shoal_config_t *)schema) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_config_set_schema((shoal_config_t *)schema, schema), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_schema_add_class((shoal_schema_t *)r, "A", NULL), SHOAL_ERR_MISUSE);
    /* Clone works on any kind and gives an independent reference. */
    shoal_results_t *res2 = shoal_clone(res);
    CHECK(res2 != NULL);
    CHECK(shoal_release(res));
    CHECK_INT_EQ(shoal_results_count(res2), 1);

    CHECK(shoal_release(schema));
    CHECK(shoal_release(res2));
    CHECK(shoal_release(l));
    CHECK(shoal_release(o));
    CHECK(shoal_release(r));
}

static void test_bad_input(void) {
    shoal_realm_t *r = open_people("bad-input.realm");
    const char *bad_utf8 = "Per\xc3\x28son";
    shoal_value_t pk = shoal_value_int(1), v;

    /* Writes outside a transaction. */
    CHECK_ERR(shoal_object_create(r, "Person", &pk) == NULL, SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK(shoal_realm_begin_write(r));
    shoal_object_t *p = create_person(r, 1);
    shoal_list_t *tags = shoal_object_get_list(p, "tags");
    CHECK(tags != NULL);
    CHECK(shoal_realm_commit(r));
    shoal_value_t s = shoal_value_string("x");
    CHECK_ERR(!shoal_object_set(p, "name", &s), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK_ERR(!shoal_object_delete(p), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK_ERR(!shoal_object_add_int(p, "age", 1), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK_ERR(!shoal_list_insert(tags, 0, &s), SHOAL_ERR_NOT_IN_WRITE_TRANSACTION);
    CHECK_PROP_NULL(p, "name");

    CHECK(shoal_realm_begin_write(r));
    /* Invalid UTF-8 in names and string values. */
    CHECK_ERR(shoal_object_create(r, bad_utf8, &pk) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_realm_objects(r, bad_utf8) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_object_get(p, "na\xffme", &v), SHOAL_ERR_INVALID_ARGUMENT);
    shoal_value_t bad_s = shoal_value_string("caf\xc3");
    CHECK_ERR(!shoal_object_set(p, "name", &bad_s), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_list_insert(tags, 0, &bad_s), SHOAL_ERR_INVALID_ARGUMENT);
    shoal_value_t bad_pk = shoal_value_string("\xed\xa0\x80"); /* an encoded surrogate is not UTF-8 */
    CHECK_ERR(shoal_object_create(r, "Tag", &bad_pk) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    shoal_schema_t *schema = shoal_schema_new();
    CHECK(schema != NULL);
    CHECK_ERR(!shoal_schema_add_class(schema, bad_utf8, NULL), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_schema_from_json("{\"classes\":[{\"name\":\"\xff\"}]}") == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    /* Malformed values. */
    shoal_value_t bad_kind = shoal_value_null();
    bad_kind.kind = 99;
    CHECK_ERR(!shoal_object_set(p, "age", &bad_kind), SHOAL_ERR_INVALID_ARGUMENT);
    shoal_value_t null_data = shoal_value_string_n(NULL, 3);
    CHECK_ERR(!shoal_object_set(p, "name", &null_data), SHOAL_ERR_INVALID_ARGUMENT);
    shoal_value_t null_bin = shoal_value_binary(NULL, 2);
    CHECK_ERR(!shoal_object_set(p, "photo", &null_bin), SHOAL_ERR_INVALID_ARGUMENT);
    shoal_value_t bad_link = shoal_value_link("Nope", 0);
    CHECK_ERR(!shoal_object_set(p, "dog", &bad_link), SHOAL_ERR_NO_SUCH_CLASS);
    CHECK_ERR(!shoal_object_set(p, "name", NULL), SHOAL_ERR_INVALID_ARGUMENT);
    /* NULL strings and out pointers. */
    CHECK_ERR(!shoal_object_get(p, NULL, &v), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_object_get(p, "name", NULL), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_object_create(r, NULL, &pk) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_realm_is_empty(r, NULL), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_object_key(p, NULL), SHOAL_ERR_INVALID_ARGUMENT);
    /* Unknown classes and properties. */
    CHECK_ERR(shoal_object_create(r, "Nope", NULL) == NULL, SHOAL_ERR_NO_SUCH_CLASS);
    CHECK_ERR(shoal_realm_objects(r, "Nope") == NULL, SHOAL_ERR_NO_SUCH_CLASS);
    CHECK_ERR(!shoal_object_set(p, "nope", &s), SHOAL_ERR_NO_SUCH_PROPERTY);
    CHECK_ERR(!shoal_object_add_int(p, "nope", 1), SHOAL_ERR_NO_SUCH_PROPERTY);
    CHECK_ERR(shoal_object_get_linked(p, "nope") == NULL, SHOAL_ERR_NO_SUCH_PROPERTY);
    /* Wrong value types. */
    CHECK_ERR(!shoal_object_set(p, "age", &s), SHOAL_ERR_WRONG_TYPE);
    shoal_value_t d = shoal_value_double(1.5);
    CHECK_ERR(!shoal_object_set(p, "active", &d), SHOAL_ERR_WRONG_TYPE);
    shoal_value_t ts = shoal_value_timestamp(1, 0);
    CHECK_ERR(!shoal_object_set(p, "score", &ts), SHOAL_ERR_WRONG_TYPE);
    shoal_value_t bin = shoal_value_binary("ab", 2);
    CHECK_ERR(!shoal_object_set(p, "nick", &bin), SHOAL_ERR_WRONG_TYPE);
    /* None of that changed anything. */
    CHECK_PROP_NULL(p, "name");
    CHECK_INT_EQ(GET_INT(p, "age"), 0);
    CHECK(shoal_realm_commit(r));

    CHECK(shoal_release(schema));
    CHECK(shoal_release(tags));
    CHECK(shoal_release(p));
    CHECK(shoal_release(r));
}

/* ------------------------------------------------------------------------------------------ */
/* Deleting realm files                                                                        */

static void test_delete_realm_files(void) {
    char path[4096];
    path_in(path, "deleted.realm");
    shoal_config_t *c = people_config("deleted.realm");
    shoal_realm_t *r = shoal_realm_open(c);
    CHECK(r != NULL);
    CHECK(shoal_realm_begin_write(r));
    shoal_object_t *o = create_person(r, 1);
    CHECK(shoal_realm_commit(r));
    CHECK(file_exists(path));

    CHECK_ERR(!shoal_delete_realm_files(c), SHOAL_ERR_REALM_IN_USE);
    shoal_error_t e;
    CHECK(shoal_get_last_error(&e));
    CHECK_STR_EQ(e.path, path);
    CHECK(file_exists(path));
    CHECK(shoal_release(r));
    /* The object handle still keeps the realm open. */
    CHECK_ERR(!shoal_delete_realm_files(c), SHOAL_ERR_REALM_IN_USE);
    CHECK(shoal_release(o));

    CHECK(shoal_delete_realm_files(c));
    CHECK(!file_exists(path));
    /* A missing file is not an error. */
    CHECK(shoal_delete_realm_files(c));
    CHECK_NO_ERROR();
    /* The next open starts empty. */
    r = shoal_realm_open(c);
    CHECK(r != NULL);
    CHECK_INT_EQ(count_objects(r, "Person"), 0);
    CHECK(shoal_release(r));
    CHECK(shoal_delete_realm_files(c));
    CHECK(shoal_release(c));
}


/* ------------------------------------------------------------------------------------------ */
/* Encryption at rest, read-only realms and compaction                                         */

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* Whether `needle` occurs in the file's bytes. */
static bool file_contains(const char *path, const char *needle) {
    long n = file_size(path);
    if (n <= 0) return false;
    char *buf = malloc((size_t)n);
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(buf, 1, (size_t)n, f) : 0;
    if (f) fclose(f);
    bool found = false;
    size_t len = strlen(needle);
    for (size_t i = 0; i + len <= got && !found; i++) found = memcmp(buf + i, needle, len) == 0;
    free(buf);
    return found;
}

static void fill_people(shoal_realm_t *r, int64_t from, int64_t to, const char *marker) {
    CHECK(shoal_realm_begin_write(r));
    char name[128];
    for (int64_t i = from; i < to; i++) {
        shoal_object_t *o = create_person(r, i);
        snprintf(name, sizeof name, "%s-%lld-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", marker, (long long)i);
        shoal_value_t v = shoal_value_string(name);
        CHECK(shoal_object_set(o, "name", &v));
        CHECK(shoal_release(o));
    }
    CHECK(shoal_realm_commit(r));
}

static void test_encryption_read_only_and_compaction(void) {
    char path[4096];
    path_in(path, "secret.realm");
    uint8_t key[64], other[64];
    for (int i = 0; i < 64; i++) {
        key[i] = (uint8_t)i;
        other[i] = (uint8_t)(i + 1);
    }

    /* Key length must be exactly 64 bytes. */
    shoal_config_t *c = people_config("secret.realm");
    CHECK_ERR(!shoal_config_set_encryption_key(c, key, 32), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_config_set_encryption_key(c, key, 65), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK(shoal_config_set_encryption_key(c, key, 64));

    /* No plaintext on disk. */
    shoal_realm_t *r = shoal_realm_open(c);
    CHECK(r != NULL);
    fill_people(r, 0, 20000, "zebra-marker");
    CHECK(shoal_release(r));
    CHECK(!file_contains(path, "zebra-marker"));
    CHECK(!file_contains(path, "Person"));

    /* A wrong key, or none, is a decryption error. */
    shoal_config_t *wrong = people_config("secret.realm");
    CHECK(shoal_config_set_encryption_key(wrong, other, 64));
    CHECK_ERR(shoal_realm_open(wrong) == NULL, SHOAL_ERR_DECRYPTION_FAILED);
    CHECK(shoal_release(wrong));
    shoal_config_t *none = people_config("secret.realm");
    CHECK_ERR(shoal_realm_open(none) == NULL, SHOAL_ERR_DECRYPTION_FAILED);
    CHECK(shoal_release(none));

    /* Compaction shrinks the file, keeps the data and keeps it encrypted. */
    r = shoal_realm_open(c);
    CHECK(r != NULL);
    CHECK(shoal_realm_begin_write(r));
    shoal_value_t limit = shoal_value_int(100);
    shoal_results_t *old = shoal_realm_query(r, "Person", "id >= $0", &limit, 1);
    CHECK(old != NULL);
    CHECK_INT_EQ(shoal_results_delete_all(old), 19900);
    CHECK(shoal_release(old));
    CHECK(shoal_realm_commit(r));
    long big = file_size(path);
    CHECK(shoal_realm_compact(r));
    long small = file_size(path);
    CHECK(small > 0 && small < big / 2);
    CHECK_INT_EQ(count_objects(r, "Person"), 100);
    /* Compaction needs the only handle. */
    shoal_realm_t *second = shoal_realm_open(c);
    CHECK(second != NULL);
    CHECK_ERR(!shoal_realm_compact(r), SHOAL_ERR_REALM_IN_USE);
    CHECK(shoal_release(second));
    CHECK(shoal_release(r));
    CHECK(!file_contains(path, "zebra-marker"));

    /* A tampered byte is a decryption error, never garbage. */
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    for (long at = 16384 + 24 + 100; at < small; at += 4136) { /* every data block */
        fseek(f, at, SEEK_SET);
        int b = fgetc(f);
        fseek(f, at, SEEK_SET);
        fputc(b ^ 0x40, f);
    }
    fclose(f);
    r = shoal_realm_open(c);
    if (r != NULL) {
        /* The open may succeed; the first read that meets a tampered page fails. */
        shoal_results_t *all = shoal_realm_objects(r, "Person");
        if (all == NULL) {
            shoal_error_t e;
            CHECK(shoal_get_last_error(&e));
            CHECK_INT_EQ(e.code, SHOAL_ERR_DECRYPTION_FAILED);
        } else {
            CHECK_ERR(shoal_results_count(all) < 0, SHOAL_ERR_DECRYPTION_FAILED);
            CHECK(shoal_release(all));
        }
        CHECK(shoal_release(r));
    } else {
        shoal_error_t e;
        CHECK(shoal_get_last_error(&e));
        CHECK_INT_EQ(e.code, SHOAL_ERR_DECRYPTION_FAILED);
    }
    CHECK(shoal_release(c));

    /* Read-only: writes refused, the file untouched. */
    char ro_path[4096];
    path_in(ro_path, "ro.realm");
    r = open_people("ro.realm");
    fill_people(r, 0, 10, "ro");
    CHECK(shoal_release(r));
    long before = file_size(ro_path);
    shoal_config_t *ro = people_config("ro.realm");
    CHECK(shoal_config_set_read_only(ro, true));
    r = shoal_realm_open(ro);
    CHECK(r != NULL);
    CHECK_INT_EQ(count_objects(r, "Person"), 10);
    CHECK_ERR(!shoal_realm_begin_write(r), SHOAL_ERR_READ_ONLY);
    CHECK_ERR(!shoal_realm_compact(r), SHOAL_ERR_READ_ONLY);
    CHECK(shoal_release(r));
    CHECK(shoal_release(ro));
    CHECK_INT_EQ(file_size(ro_path), before);
}

/* ------------------------------------------------------------------------------------------ */
/* App, credentials and users (against the shoal-server at $SHOAL_TEST_AUTH_URL)               */

/* The auth URL of a running `shoal-server --debug-provider` (tests/c_abi.rs starts one). */
static const char *test_auth_url(void) {
    const char *url = getenv("SHOAL_TEST_AUTH_URL");
    if (!url || !*url)
        check_failf(__FILE__, __LINE__,
                    "SHOAL_TEST_AUTH_URL is not set: start `shoal-server --data DIR --listen 127.0.0.1:0 "
                    "--debug-provider` and set it to http://ADDR/auth (tests/c_abi.rs does)");
    return url;
}

/* An auth URL on a loopback port nothing listens on; the buffer must hold 64 bytes. */
static const char *closed_port_url(char *buf) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    bool ok = bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && getsockname(fd, (struct sockaddr *)&addr, &len) == 0;
    close(fd);
    CHECK(ok);
    snprintf(buf, 64, "http://127.0.0.1:%d/auth", (int)ntohs(addr.sin_port));
    return buf;
}

/* A deadline WAIT_SECONDS from now, for pthread_cond_timedwait. */
static struct timespec deadline_from_now(void) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_SECONDS;
    return deadline;
}

/* What the auth callback saw. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int logged_in;
    int logged_out;
    int other_events;
    char last_in[128];  /* identity of the last LOGGED_IN */
    char last_out[128]; /* identity of the last LOGGED_OUT */
    bool valid_at_login;
    int freed;
} auth_state_t;

static void on_auth(void *userdata, shoal_user_t *user, int32_t event) {
    auth_state_t *s = userdata;
    /* The user is valid during the call: callbacks may call Shoal with it. */
    char *identity = shoal_user_identity(user);
    bool valid = shoal_user_is_valid(user);
    pthread_mutex_lock(&s->mu);
    if (event == SHOAL_AUTH_LOGGED_IN) {
        s->logged_in++;
        s->valid_at_login = valid;
        snprintf(s->last_in, sizeof s->last_in, "%s", identity ? identity : "(null)");
    } else if (event == SHOAL_AUTH_LOGGED_OUT) {
        s->logged_out++;
        snprintf(s->last_out, sizeof s->last_out, "%s", identity ? identity : "(null)");
    } else {
        s->other_events++;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    shoal_free(identity);
}

static void free_auth_state(void *userdata) {
    auth_state_t *s = userdata;
    pthread_mutex_lock(&s->mu);
    s->freed++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Waits until `*counter` reaches `n`; false on timeout. */
static bool wait_for_count(pthread_mutex_t *mu, pthread_cond_t *cv, const int *counter, int n) {
    struct timespec deadline = deadline_from_now();
    pthread_mutex_lock(mu);
    int rc = 0;
    while (*counter < n && rc != ETIMEDOUT) rc = pthread_cond_timedwait(cv, mu, &deadline);
    bool ok = *counter >= n;
    pthread_mutex_unlock(mu);
    return ok;
}

/* What an asynchronous login handed back. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    shoal_user_t *user;
    int32_t error_code;
    int32_t error_category;
    bool on_main_thread;
    int freed;
} login_state_t;

static pthread_t g_main_thread;

static void on_login(void *userdata, shoal_user_t *user, const shoal_error_t *error) {
    login_state_t *s = userdata;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->user = user; /* a new handle: the test releases it */
    s->error_code = error ? error->code : -100;
    s->error_category = error ? error->category : -100;
    s->on_main_thread = pthread_equal(pthread_self(), g_main_thread);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void free_login_state(void *userdata) {
    login_state_t *s = userdata;
    pthread_mutex_lock(&s->mu);
    s->freed++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void login_state_init(login_state_t *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void login_state_destroy(login_state_t *s) {
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

/* CHECK_USER_ID(user, expected): the user's identity is `expected`. */
#define CHECK_USER_ID(user, expected)                          \
    do {                                                       \
        char *check_id_ = shoal_user_identity(user);           \
        CHECK(check_id_ != NULL);                              \
        bool check_same_ = strcmp(check_id_, (expected)) == 0; \
        shoal_free(check_id_);                                 \
        CHECK(check_same_);                                    \
    } while (0)

static void test_users_against_a_server(void) {
    const char *url = test_auth_url();
    char name[64], dir[4096], dir2[4096], closed[64];
    snprintf(name, sizeof name, "c-user-%ld-%ld", (long)getpid(), (long)time(NULL));
    g_main_thread = pthread_self();

    shoal_app_t *app = shoal_app_new(path_in(dir, "app"), "io.shoal.tests.c");
    CHECK(app != NULL);
    /* Static: a failed CHECK leaves this function while library threads may still call back. */
    static auth_state_t events;
    memset(&events, 0, sizeof events);
    pthread_mutex_init(&events.mu, NULL);
    pthread_cond_init(&events.cv, NULL);
    shoal_token_t *token = shoal_app_add_auth_callback(app, on_auth, &events, free_auth_state);
    CHECK(token != NULL);

    /* Nobody is logged in: NULL without an error. */
    CHECK(shoal_app_current_user(app) == NULL);
    CHECK_NO_ERROR();
    CHECK_INT_EQ(shoal_app_all_users(app, NULL, 0), 0);

    /* Register, which logs in. */
    shoal_credentials_t *reg = shoal_credentials_password(name, "myPassw0rd", true);
    CHECK(reg != NULL);
    shoal_user_t *user = shoal_app_login(app, reg, url);
    CHECK(user != NULL);
    char *identity = shoal_user_identity(user);
    CHECK(identity != NULL && strlen(identity) == 32);
    CHECK(shoal_user_is_valid(user));
    CHECK(!shoal_user_is_admin(user));
    CHECK_NO_ERROR();
    char *s = shoal_user_auth_url(user);
    CHECK_STR_EQ(s, url);
    shoal_free(s);
    char *refresh = shoal_user_refresh_token(user);
    CHECK(refresh != NULL && refresh[0]);
    /* LOGGED_IN ran on a library thread with the logged-in user. */
    CHECK(wait_for_count(&events.mu, &events.cv, &events.logged_in, 1));
    pthread_mutex_lock(&events.mu);
    bool same = strcmp(events.last_in, identity) == 0 && events.valid_at_login;
    pthread_mutex_unlock(&events.mu);
    CHECK(same);
    /* Registering the name again is 613; a wrong password 611. */
    CHECK_ERR(shoal_app_login(app, reg, url) == NULL, SHOAL_ERR_EXISTING_ACCOUNT);
    shoal_credentials_t *wrong = shoal_credentials_password(name, "not-the-password", false);
    CHECK(wrong != NULL);
    CHECK_ERR(shoal_app_login(app, wrong, url) == NULL, SHOAL_ERR_INVALID_CREDENTIALS);
    shoal_error_t e;
    CHECK(shoal_get_last_error(&e));
    CHECK_INT_EQ(e.category, SHOAL_ERR_CATEGORY_AUTH);
    CHECK_STR_EQ(shoal_error_name(e.code), "INVALID_CREDENTIALS");

    /* The current user is this user; one user in all. */
    shoal_user_t *current = shoal_app_current_user(app);
    CHECK(current != NULL);
    CHECK_USER_ID(current, identity);
    CHECK_INT_EQ(shoal_app_all_users(app, NULL, 0), 1);

    /* A second user (the debug provider's admin): two in all, no current user. */
    shoal_credentials_t *dbg = shoal_credentials_debug("admin");
    CHECK(dbg != NULL);
    shoal_user_t *admin = shoal_app_login(app, dbg, url);
    CHECK(admin != NULL);
    CHECK(shoal_user_is_admin(admin));
    CHECK_INT_EQ(shoal_app_all_users(app, NULL, 0), 2);
    CHECK_ERR(shoal_app_current_user(app) == NULL, SHOAL_ERR_MULTIPLE_USERS_LOGGED_IN);
    shoal_user_t *all[3] = {NULL, NULL, NULL};
    CHECK_INT_EQ(shoal_app_all_users(app, all, 1), 2); /* only as many as fit are written */
    CHECK(all[0] != NULL && all[1] == NULL);
    CHECK(shoal_release(all[0]));
    CHECK_INT_EQ(shoal_app_all_users(app, all, 3), 2);
    CHECK(all[0] != NULL && all[1] != NULL && all[2] == NULL);
    char *id0 = shoal_user_identity(all[0]);
    char *id1 = shoal_user_identity(all[1]);
    CHECK(id0 && id1);
    bool ordered = strcmp(id0, id1) < 0;
    shoal_free(id0);
    shoal_free(id1);
    CHECK(ordered); /* by identity */
    CHECK(shoal_release(all[0]));
    CHECK(shoal_release(all[1]));
    CHECK_ERR(shoal_app_all_users(app, NULL, 2) == -1, SHOAL_ERR_INVALID_ARGUMENT);
    shoal_user_t *byid = shoal_app_get_user(app, identity);
    CHECK(byid != NULL);
    CHECK(shoal_app_get_user(app, "no-such-identity") == NULL);
    CHECK_NO_ERROR();

    /* Lookup (admins only): found, unknown -> NULL with no error, non-admin -> 614. */
    char *found = shoal_user_lookup(admin, "password", name);
    CHECK(found != NULL && strstr(found, identity) != NULL && strstr(found, "\"is_admin\":false") != NULL);
    shoal_free(found);
    CHECK(shoal_user_lookup(admin, "password", "no-such-user-anywhere") == NULL);
    CHECK_NO_ERROR();
    CHECK_ERR(shoal_user_lookup(user, "password", name) == NULL, SHOAL_ERR_ACCESS_DENIED);

    /* JSON round trip, into another app. */
    char *json = shoal_user_to_json(user);
    CHECK(json != NULL && strstr(json, "\"authUrl\"") != NULL);
    shoal_app_t *app2 = shoal_app_new(path_in(dir2, "app2"), "io.shoal.tests.c");
    CHECK(app2 != NULL);
    shoal_user_t *copy = shoal_app_user_from_json(app2, json);
    CHECK(copy != NULL);
    CHECK_USER_ID(copy, identity);
    CHECK(shoal_user_is_valid(copy));
    s = shoal_user_refresh_token(copy);
    CHECK_STR_EQ(s, refresh);
    shoal_free(s);
    s = shoal_user_to_json(copy);
    CHECK_STR_EQ(s, json);
    shoal_free(s);
    CHECK_ERR(shoal_app_user_from_json(app2, "{") == NULL, SHOAL_ERR_JSON);
    CHECK(shoal_release(copy));
    shoal_free(json);

    /* Logout: every handle of the user is invalid at once; LOGGED_OUT once the server confirmed. */
    CHECK(shoal_user_logout(current));
    CHECK(!shoal_user_is_valid(user));
    CHECK_NO_ERROR();
    CHECK(!shoal_user_is_valid(byid));
    CHECK(shoal_user_refresh_token(user) == NULL);
    CHECK_NO_ERROR();
    CHECK_INT_EQ(shoal_app_all_users(app, NULL, 0), 1);
    CHECK(wait_for_count(&events.mu, &events.cv, &events.logged_out, 1));
    pthread_mutex_lock(&events.mu);
    same = strcmp(events.last_out, identity) == 0;
    pthread_mutex_unlock(&events.mu);
    CHECK(same);
    uint64_t pending = 99;
    CHECK(shoal_app_pending_revocations(app, &pending));
    CHECK_INT_EQ(pending, 0);
    /* A logged-out user cannot change its password. */
    CHECK_ERR(!shoal_user_change_password(user, "new", NULL), SHOAL_ERR_EXPIRED_REFRESH_TOKEN);

    /* An access-token login makes no network call: nothing listens at this URL. */
    shoal_credentials_t *offline = shoal_credentials_access_token("some-token", "offline-user");
    CHECK(offline != NULL);
    shoal_user_t *off = shoal_app_login(app2, offline, closed_port_url(closed));
    CHECK(off != NULL);
    CHECK_USER_ID(off, "offline-user");
    CHECK(shoal_user_is_valid(off));
    s = shoal_user_refresh_token(off);
    CHECK_STR_EQ(s, "some-token");
    shoal_free(s);
    /* A password login there is an I/O error (recoverable). */
    CHECK_ERR(shoal_app_login(app2, wrong, closed) == NULL, SHOAL_ERR_IO);
    CHECK_ERR(shoal_app_login(app2, wrong, "ftp://127.0.0.1/auth") == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_credentials_password("", "pw", false) == NULL, SHOAL_ERR_INVALID_ARGUMENT);

    /* Asynchronous login: the callback runs once on a library thread, then free_userdata. */
    static login_state_t ls;
    login_state_init(&ls);
    shoal_credentials_t *again = shoal_credentials_password(name, "myPassw0rd", false);
    CHECK(again != NULL);
    CHECK(shoal_app_login_async(app, again, url, on_login, &ls, free_login_state));
    CHECK(wait_for_count(&ls.mu, &ls.cv, &ls.freed, 1));
    pthread_mutex_lock(&ls.mu);
    int calls = ls.calls;
    shoal_user_t *async_user = ls.user;
    bool main_thread = ls.on_main_thread;
    int32_t code = ls.error_code;
    pthread_mutex_unlock(&ls.mu);
    CHECK_INT_EQ(calls, 1);
    CHECK(!main_thread);
    CHECK_INT_EQ(code, -100); /* no error */
    CHECK(async_user != NULL);
    CHECK_USER_ID(async_user, identity);
    CHECK(shoal_user_is_valid(user)); /* the old handle is valid again */
    CHECK(shoal_release(async_user));
    login_state_destroy(&ls);
    /* ... and a failing one hands over the error. */
    login_state_init(&ls);
    CHECK(shoal_app_login_async(app, wrong, url, on_login, &ls, free_login_state));
    CHECK(wait_for_count(&ls.mu, &ls.cv, &ls.freed, 1));
    pthread_mutex_lock(&ls.mu);
    calls = ls.calls;
    async_user = ls.user;
    code = ls.error_code;
    int32_t category = ls.error_category;
    pthread_mutex_unlock(&ls.mu);
    CHECK_INT_EQ(calls, 1);
    CHECK(async_user == NULL);
    CHECK_INT_EQ(code, SHOAL_ERR_INVALID_CREDENTIALS);
    CHECK_INT_EQ(category, SHOAL_ERR_CATEGORY_AUTH);
    login_state_destroy(&ls);
    /* Invalid arguments: false at once, and free_userdata has run. */
    login_state_init(&ls);
    CHECK_ERR(!shoal_app_login_async(app, NULL, url, on_login, &ls, free_login_state), SHOAL_ERR_MISUSE);
    CHECK_INT_EQ(ls.freed, 1);
    CHECK_INT_EQ(ls.calls, 0);
    login_state_destroy(&ls);

    /* The LOGGED_IN events: register, debug admin, async login (not the JSON copy, another app). */
    CHECK(wait_for_count(&events.mu, &events.cv, &events.logged_in, 3));
    /* Releasing the token unregisters the callback; free_userdata runs after its last call. */
    CHECK(shoal_release(token));
    CHECK(wait_for_count(&events.mu, &events.cv, &events.freed, 1));
    CHECK_INT_EQ(events.logged_in, 3);
    CHECK_INT_EQ(events.other_events, 0);

    CHECK(shoal_release(off));
    CHECK(shoal_release(offline));
    CHECK(shoal_release(again));
    CHECK(shoal_release(byid));
    CHECK(shoal_release(admin));
    CHECK(shoal_release(dbg));
    CHECK(shoal_release(current));
    CHECK(shoal_release(wrong));
    CHECK(shoal_release(user));
    CHECK(shoal_release(reg));
    CHECK(shoal_release(app2));
    CHECK(shoal_release(app));
    shoal_free(refresh);
    shoal_free(identity);
    /* Nothing holds the apps any more: a new app of the directory may have another id. */
    shoal_app_t *reopened = shoal_app_new(dir, "io.shoal.tests.c.other");
    CHECK(reopened != NULL);
    CHECK_INT_EQ(shoal_app_all_users(reopened, NULL, 0), 2); /* the store kept both logins */
    CHECK(shoal_release(reopened));
    pthread_cond_destroy(&events.cv);
    pthread_mutex_destroy(&events.mu);
}

/* A CA certificate (no key anywhere): enough to check that an app takes it as its roots. */
static const char TEST_CA_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBnDCCAUGgAwIBAgIUVJHKHdH53jPoaZxFhx7PJccuvWswCgYIKoZIzj0EAwIw\n"
    "GjEYMBYGA1UEAwwPU2hvYWwgQyB0ZXN0IENBMCAXDTI2MTIwNjAzMTI0MloYDzIx\n"
    "MjYxMTEyMDMxMjQyWjAaMRgwFgYDVQQDDA9TaG9hbCBDIHRlc3QgQ0EwWTATBgcq\n"
    "hkjOPQIBBggqhkjOPQMBBwNCAAQhTJyrmsOhtBmXwKCkmYYSXXi+M64Ew9Pdh0/M\n"
    "edUWZCWeL+s4urlYag69rJb2ypqAZAcaWUoY19shhR9cFdSwo2MwYTAdBgNVHQ4E\n"
    "FgQUC2YGVXqEcfTmrd7eemeYKwHhsYMwHwYDVR0jBBgwFoAUC2YGVXqEcfTmrd7e\n"
    "emeYKwHhsYMwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZI\n"
    "zj0EAwIDSQAwRgIhAN/w3f1LXc0MTLCDLo7Rj64yE8FSJr3vY+gJBxjDylVeAiEA\n"
    "5VK8p29yIc4F6fGe8zAYQaLn8m2lR0zZ9XPNma6aCR8=\n"
    "-----END CERTIFICATE-----\n";

static void test_app_trusted_ca(void) {
    char dir[4096];
    path_in(dir, "ca-app");
    CHECK_ERR(shoal_app_new_with_trusted_ca(dir, "io.shoal.tests.c", "not a certificate") == NULL,
              SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_app_new_with_trusted_ca(dir, "io.shoal.tests.c", NULL) == NULL,
              SHOAL_ERR_INVALID_ARGUMENT);
    shoal_app_t *app = shoal_app_new_with_trusted_ca(dir, "io.shoal.tests.c", TEST_CA_PEM);
    CHECK(app != NULL);
    /* The same roots give the same app; none (the public roots) is refused while it lives. */
    shoal_app_t *again = shoal_app_new_with_trusted_ca(dir, "io.shoal.tests.c", TEST_CA_PEM);
    CHECK(again != NULL);
    CHECK_ERR(shoal_app_new(dir, "io.shoal.tests.c") == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK(shoal_release(again));
    CHECK(shoal_release(app));
}

/* ------------------------------------------------------------------------------------------ */
/* Synced realms and sessions (against the same shoal-server: its sync endpoint shares the     */
/* auth URL's host and port)                                                                   */

/* "realm://HOST:PORT<path>" for the server at $SHOAL_TEST_AUTH_URL ("http://HOST:PORT/auth");
 * the buffer must hold 512 bytes. */
static const char *sync_url(char *buf, const char *path) {
    const char *host = strstr(test_auth_url(), "://");
    CHECK(host != NULL);
    host += 3;
    const char *end = strchr(host, '/');
    int len = end ? (int)(end - host) : (int)strlen(host);
    snprintf(buf, 512, "realm://%.*s%s", len, host, path);
    return buf;
}

/* Item {id: int pk, name: string} */
static shoal_schema_t *item_schema(void) {
    shoal_schema_t *s = shoal_schema_new();
    CHECK(s != NULL);
    CHECK(shoal_schema_add_class(s, "Item", "id"));
    CHECK(shoal_schema_add_property(s, "Item", "id", SHOAL_PROPERTY_TYPE_INT, 0, NULL));
    CHECK(shoal_schema_add_property(s, "Item", "name", SHOAL_PROPERTY_TYPE_STRING, 0, NULL));
    return s;
}

/* A configuration with the item schema, synced by `sc` (its path becomes the sync file). */
static shoal_config_t *synced_config(const shoal_sync_config_t *sc) {
    shoal_config_t *c = shoal_config_new("unused");
    CHECK(c != NULL);
    shoal_schema_t *s = item_schema();
    CHECK(shoal_config_set_schema(c, s));
    CHECK(shoal_release(s));
    CHECK(shoal_config_set_sync(c, sc));
    return c;
}

/* Creates Items from..to-1 in one write transaction. */
static void add_items(shoal_realm_t *r, int64_t from, int64_t to) {
    CHECK(shoal_realm_begin_write(r));
    for (int64_t id = from; id < to; id++) {
        shoal_value_t pk = shoal_value_int(id);
        shoal_object_t *o = shoal_object_create(r, "Item", &pk);
        CHECK(o != NULL);
        shoal_value_t name = shoal_value_string("item");
        CHECK(shoal_object_set(o, "name", &name));
        CHECK(shoal_release(o));
    }
    CHECK(shoal_realm_commit(r));
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Polls (up to WAIT_SECONDS) until the session is in `state`; false on timeout. */
static bool wait_for_session_state(const shoal_session_t *s, int32_t state) {
    for (int i = 0; i < WAIT_SECONDS * 50; i++) {
        if (shoal_session_state(s) == state) return true;
        sleep_ms(20);
    }
    return shoal_session_state(s) == state;
}

/* The session's user's identity equals `identity`. */
static bool session_user_is(const shoal_session_t *s, const char *identity) {
    shoal_user_t *u = shoal_session_user(s);
    if (!u) return false;
    char *id = shoal_user_identity(u);
    bool same = id && strcmp(id, identity) == 0;
    shoal_free(id);
    shoal_release(u);
    return same;
}

/* Counts free_userdata calls (no lock: the tests read it after synchronous releases only). */
static int g_sync_frees;
static void count_sync_free(void *userdata) {
    (void)userdata;
    __atomic_add_fetch(&g_sync_frees, 1, __ATOMIC_SEQ_CST);
}
static int sync_frees(void) {
    return __atomic_load_n(&g_sync_frees, __ATOMIC_SEQ_CST);
}

static void never_called_error(void *userdata, shoal_session_t *session, const shoal_sync_error_t *error) {
    (void)userdata;
    (void)session;
    (void)error;
}

static void test_sync_config_urls_and_paths(void) {
    char dir[4096], file[4096];
    const char *auth = test_auth_url();
    shoal_app_t *app = shoal_app_new(path_in(dir, "sync-config-app"), "io.shoal.tests.c");
    CHECK(app != NULL);
    /* Access-token logins need no network: users "alice" and "bob". */
    shoal_credentials_t *ca = shoal_credentials_access_token("token-a", "alice");
    shoal_credentials_t *cb = shoal_credentials_access_token("token-b", "bob");
    CHECK(ca != NULL && cb != NULL);
    shoal_user_t *alice = shoal_app_login(app, ca, auth);
    shoal_user_t *bob = shoal_app_login(app, cb, auth);
    CHECK(alice != NULL && bob != NULL);

    /* A NULL or released user is a misuse (as for every handle); NULL or bad URLs are invalid. */
    CHECK_ERR(shoal_sync_config_new(NULL, "realm://127.0.0.1:9080/~/x") == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_sync_config_new(alice, NULL) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    static const char *const bad_urls[] = {
        "http://127.0.0.1:9080/~/tasks",      /* wrong scheme */
        "realm://127.0.0.1:9080/~/tasks.realm", /* reserved suffix */
        "realm://127.0.0.1:9080/~/x.realm.lock",
        "realm://127.0.0.1:9080/~/../tasks",   /* '..' segment */
        "realm://127.0.0.1:9080/~/./tasks",    /* '.' segment */
        "realm://127.0.0.1:9080/~/a b",        /* bad character */
        "realm://127.0.0.1:9080/~//tasks",     /* empty segment */
        "realm://127.0.0.1:9080",              /* no path */
        "realm://127.0.0.1:9080/~/tasks?x=1",  /* query */
        "127.0.0.1:9080/~/tasks",              /* no scheme */
        "",
    };
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        shoal_sync_config_t *bad = shoal_sync_config_new(alice, bad_urls[i]);
        if (bad != NULL) {
            shoal_release(bad);
            check_failf(__FILE__, __LINE__, "the URL \"%s\" was accepted", bad_urls[i]);
        }
        CHECK_ERR(bad == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    }

    /* '~' stands for the identity; each user gets its own file under the app's sync root. */
    shoal_sync_config_t *sa = shoal_sync_config_new(alice, "realm://127.0.0.1:9080/~/tasks");
    shoal_sync_config_t *sb = shoal_sync_config_new(bob, "realm://127.0.0.1:9080/~/tasks");
    CHECK(sa != NULL && sb != NULL);
    CHECK_NO_ERROR();
    char *s = shoal_sync_config_server_url(sa);
    CHECK_STR_EQ(s, "realm://127.0.0.1:9080/alice/tasks");
    shoal_free(s);
    s = shoal_sync_config_server_path(sa);
    CHECK_STR_EQ(s, "/alice/tasks");
    shoal_free(s);
    s = shoal_sync_config_server_url(sb);
    CHECK_STR_EQ(s, "realm://127.0.0.1:9080/bob/tasks");
    shoal_free(s);
    char *pa = shoal_sync_config_path(sa);
    char *pb = shoal_sync_config_path(sb);
    CHECK(pa != NULL && pb != NULL);
    snprintf(file, sizeof file, "%s", pa);
    bool differ = strcmp(pa, pb) != 0;
    bool in_root = strstr(pa, "shoal-object-server") != NULL && strstr(pa, "/alice/") != NULL &&
                   strstr(pb, "/bob/") != NULL;
    shoal_free(pb);
    shoal_free(pa);
    CHECK(differ);
    CHECK(in_root);
    /* An explicit identity instead of '~' names the same realm. */
    shoal_sync_config_t *same = shoal_sync_config_new(alice, "realm://127.0.0.1:9080/alice/tasks");
    CHECK(same != NULL);
    s = shoal_sync_config_path(same);
    CHECK_STR_EQ(s, file);
    shoal_free(s);
    CHECK(shoal_release(same));

    /* Options. */
    CHECK(shoal_sync_config_set_stop_policy(sa, SHOAL_STOP_POLICY_IMMEDIATELY));
    CHECK(shoal_sync_config_set_stop_policy(sa, SHOAL_STOP_POLICY_LIVE_INDEFINITELY));
    CHECK(shoal_sync_config_set_stop_policy(sa, SHOAL_STOP_POLICY_AFTER_CHANGES_UPLOADED));
    CHECK_ERR(!shoal_sync_config_set_stop_policy(sa, 3), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_sync_config_set_stop_policy(sa, -1), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK(shoal_sync_config_set_wait_for_initial_data(sa, true, 1000));
    CHECK(shoal_sync_config_set_wait_for_initial_data(sa, false, 0));
    CHECK(shoal_sync_config_set_token_binder(sa, NULL, NULL, NULL));
    CHECK(shoal_sync_config_set_error_handler(sa, NULL, NULL, NULL));
    CHECK_ERR(!shoal_sync_config_set_stop_policy(NULL, 0), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_sync_config_set_stop_policy((shoal_sync_config_t *)alice, 0), SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_sync_config_path(NULL) == NULL, SHOAL_ERR_MISUSE);

    /* free_userdata of a handler runs once, when nothing uses the sync configuration any more:
     * at once if the call fails, else after the last config copied from it is released. */
    g_sync_frees = 0;
    CHECK_ERR(!shoal_sync_config_set_error_handler(NULL, never_called_error, NULL, count_sync_free),
              SHOAL_ERR_MISUSE);
    CHECK_INT_EQ(sync_frees(), 1);
    shoal_sync_config_t *sh = shoal_sync_config_new(alice, "realm://127.0.0.1:9080/~/handled");
    CHECK(sh != NULL);
    CHECK(shoal_sync_config_set_error_handler(sh, never_called_error, NULL, count_sync_free));
    shoal_config_t *hc = synced_config(sh);
    CHECK(shoal_release(sh));
    CHECK_INT_EQ(sync_frees(), 1); /* the config still holds a copy */
    CHECK(shoal_release(hc));
    CHECK_INT_EQ(sync_frees(), 2);

    /* shoal_config_set_sync moves the config's path to the sync file. */
    shoal_config_t *c = synced_config(sa);
    s = shoal_config_get_path(c);
    CHECK_STR_EQ(s, file);
    shoal_free(s);
    CHECK_ERR(!shoal_config_set_sync(c, NULL), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_config_set_sync(NULL, sa), SHOAL_ERR_MISUSE);
    /* A session exists for a synced configuration before any open (inactive), not for a local one. */
    shoal_session_t *session = shoal_app_get_session(app, c);
    CHECK(session != NULL);
    CHECK_INT_EQ(shoal_session_state(session), SHOAL_SESSION_INACTIVE);
    CHECK_INT_EQ(shoal_session_connection_state(session), SHOAL_CONNECTION_DISCONNECTED);
    s = shoal_session_path(session);
    CHECK_STR_EQ(s, file);
    shoal_free(s);
    s = shoal_session_server_url(session);
    CHECK_STR_EQ(s, "realm://127.0.0.1:9080/alice/tasks");
    shoal_free(s);
    CHECK(session_user_is(session, "alice"));
    shoal_session_t *again = shoal_app_get_session(app, c);
    CHECK(again != NULL);
    CHECK(shoal_release(again));
    shoal_config_t *local = people_config("sync-local.realm");
    CHECK_ERR(shoal_app_get_session(app, local) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    shoal_realm_t *lr = shoal_realm_open(local);
    CHECK(lr != NULL);
    CHECK_ERR(shoal_realm_get_session(lr) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK(shoal_realm_close(lr));
    CHECK_ERR(shoal_realm_get_session(lr) == NULL, SHOAL_ERR_REALM_CLOSED);
    CHECK(shoal_release(lr));

    /* Recovery configurations open any file read-only and unsynced. */
    CHECK_ERR(shoal_config_for_recovery(NULL, NULL, 0, NULL) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    static const uint8_t short_key[10] = {0};
    char *local_path = shoal_config_get_path(local);
    CHECK(local_path != NULL);
    shoal_config_t *bad_key = shoal_config_for_recovery(local_path, short_key, sizeof short_key, NULL);
    if (bad_key) {
        shoal_release(bad_key);
        shoal_free(local_path);
        check_failf(__FILE__, __LINE__, "a 10-byte key was accepted");
    }
    CHECK_ERR(bad_key == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    shoal_config_t *rc = shoal_config_for_recovery(local_path, NULL, 0, NULL);
    shoal_free(local_path);
    CHECK(rc != NULL);
    shoal_realm_t *rr = shoal_realm_open(rc);
    CHECK(rr != NULL);
    CHECK_ERR(!shoal_realm_begin_write(rr), SHOAL_ERR_READ_ONLY);
    CHECK_ERR(shoal_realm_get_session(rr) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK(shoal_release(rr));
    CHECK(shoal_release(rc));

    CHECK(shoal_release(local));
    CHECK(shoal_release(session));
    CHECK(shoal_release(c));
    CHECK(shoal_release(sb));
    CHECK(shoal_release(sa));
    CHECK(shoal_release(bob));
    CHECK(shoal_release(alice));
    CHECK(shoal_release(cb));
    CHECK(shoal_release(ca));
    CHECK(shoal_release(app));
}

/* A timeout for session waits. */
#define WAIT_MS ((uint64_t)WAIT_SECONDS * 1000)

/* What state (or connection state) callbacks saw. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    unsigned seen; /* bit 1 << state for every new state seen */
    bool bad;      /* a state out of range, or old == new */
    int freed;
} states_seen_t;

static void states_seen_init(states_seen_t *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void states_seen_destroy(states_seen_t *s) {
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

static void on_states(void *userdata, int32_t old_state, int32_t new_state) {
    states_seen_t *s = userdata;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    if (old_state < 0 || old_state > 4 || new_state < 0 || new_state > 4 || old_state == new_state)
        s->bad = true;
    else
        s->seen |= 1u << new_state;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void free_states_seen(void *userdata) {
    states_seen_t *s = userdata;
    pthread_mutex_lock(&s->mu);
    s->freed++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Waits until the callback saw `state`; false on timeout. */
static bool wait_for_state_seen(states_seen_t *s, int32_t state) {
    struct timespec deadline = deadline_from_now();
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (!(s->seen & (1u << state)) && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&s->cv, &s->mu, &deadline);
    bool ok = (s->seen & (1u << state)) != 0;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* What a progress callback saw. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    uint64_t first_transferable;
    uint64_t transferred;
    uint64_t transferable;
    bool went_back; /* transferred shrank, or transferable moved (CURRENT_CHANGES fixes it) */
    int complete;   /* 1 once transferred == transferable > 0 */
    int calls_after_complete;
    int freed;
} progress_seen_t;

static void on_progress(void *userdata, uint64_t transferred, uint64_t transferable) {
    progress_seen_t *s = userdata;
    pthread_mutex_lock(&s->mu);
    if (s->complete) s->calls_after_complete++;
    if (s->calls == 0)
        s->first_transferable = transferable;
    else if (transferred < s->transferred || transferable != s->first_transferable)
        s->went_back = true;
    s->calls++;
    s->transferred = transferred;
    s->transferable = transferable;
    if (transferable > 0 && transferred == transferable) s->complete = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void free_progress_seen(void *userdata) {
    progress_seen_t *s = userdata;
    pthread_mutex_lock(&s->mu);
    s->freed++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void test_sync_two_apps_converge(void) {
    char dir_a[4096], dir_b[4096], name[64], url[512];
    const char *auth = test_auth_url();
    snprintf(name, sizeof name, "c-sync-%ld-%ld", (long)getpid(), (long)time(NULL));
    /* Two devices: two apps with their own base directories, one registered user. */
    shoal_app_t *app_a = shoal_app_new(path_in(dir_a, "sync-device-a"), "io.shoal.tests.c");
    shoal_app_t *app_b = shoal_app_new(path_in(dir_b, "sync-device-b"), "io.shoal.tests.c");
    CHECK(app_a != NULL && app_b != NULL);
    shoal_credentials_t *reg = shoal_credentials_password(name, "myPassw0rd", true);
    shoal_credentials_t *creds = shoal_credentials_password(name, "myPassw0rd", false);
    CHECK(reg != NULL && creds != NULL);
    shoal_user_t *ua = shoal_app_login(app_a, reg, auth);
    CHECK(ua != NULL);
    shoal_user_t *ub = shoal_app_login(app_b, creds, auth);
    CHECK(ub != NULL);
    char *identity = shoal_user_identity(ua);
    CHECK(identity != NULL);
    CHECK_USER_ID(ub, identity);
    sync_url(url, "/~/ctest");

    /* Device A. The session exists before the realm is opened: registering the callbacks
     * first means no transition is missed. */
    shoal_sync_config_t *sca = shoal_sync_config_new(ua, url);
    CHECK(sca != NULL);
    shoal_config_t *ca = synced_config(sca);
    shoal_session_t *sa = shoal_app_get_session(app_a, ca);
    CHECK(sa != NULL);
    CHECK_INT_EQ(shoal_session_state(sa), SHOAL_SESSION_INACTIVE);
    static states_seen_t states, conns;
    states_seen_init(&states);
    states_seen_init(&conns);
    shoal_token_t *st = shoal_session_add_state_callback(sa, on_states, &states, free_states_seen);
    CHECK(st != NULL);
    shoal_token_t *ct = shoal_session_add_connection_callback(sa, on_states, &conns, free_states_seen);
    CHECK(ct != NULL);
    shoal_realm_t *ra = shoal_realm_open(ca);
    CHECK(ra != NULL);
    /* The realm's session is that session. */
    shoal_session_t *same = shoal_realm_get_session(ra);
    CHECK(same != NULL);
    char *p1 = shoal_session_path(same);
    char *p2 = shoal_config_get_path(ca);
    bool same_path = p1 && p2 && strcmp(p1, p2) == 0;
    shoal_free(p1);
    shoal_free(p2);
    CHECK(same_path);
    CHECK(shoal_release(same));
    CHECK(session_user_is(sa, identity));
    char *server_url = shoal_session_server_url(sa);
    CHECK(server_url != NULL);
    bool resolved = strstr(server_url, identity) != NULL && strstr(server_url, "/ctest") != NULL &&
                    strstr(server_url, "~") == NULL;
    shoal_free(server_url);
    CHECK(resolved);

    add_items(ra, 0, 5);
    static progress_seen_t up;
    memset(&up, 0, sizeof up);
    pthread_mutex_init(&up.mu, NULL);
    pthread_cond_init(&up.cv, NULL);
    shoal_token_t *pt = shoal_session_add_progress_callback(sa, SHOAL_PROGRESS_UPLOAD, SHOAL_PROGRESS_CURRENT_CHANGES,
                                                            on_progress, &up, free_progress_seen);
    CHECK(pt != NULL);
    CHECK(shoal_session_wait_for_upload(sa, WAIT_MS));
    CHECK_NO_ERROR();
    CHECK(wait_for_count(&up.mu, &up.cv, &up.complete, 1));
    pthread_mutex_lock(&up.mu);
    uint64_t transferred = up.transferred, transferable = up.transferable;
    bool went_back = up.went_back;
    pthread_mutex_unlock(&up.mu);
    CHECK(transferable > 0);
    CHECK_INT_EQ(transferred, transferable);
    CHECK(!went_back);
    CHECK(wait_for_state_seen(&states, SHOAL_SESSION_ACTIVE));
    CHECK(wait_for_state_seen(&conns, SHOAL_CONNECTION_CONNECTED));
    CHECK_INT_EQ(shoal_session_state(sa), SHOAL_SESSION_ACTIVE);
    CHECK_INT_EQ(shoal_session_connection_state(sa), SHOAL_CONNECTION_CONNECTED);

    /* Device B downloads the five items, and its own writes reach A. */
    shoal_sync_config_t *scb = shoal_sync_config_new(ub, url);
    CHECK(scb != NULL);
    shoal_config_t *cb = synced_config(scb);
    shoal_realm_t *rb = shoal_realm_open(cb);
    CHECK(rb != NULL);
    shoal_session_t *sb = shoal_realm_get_session(rb);
    CHECK(sb != NULL);
    CHECK(shoal_session_wait_for_download(sb, WAIT_MS));
    CHECK(shoal_realm_refresh(rb, NULL));
    CHECK_INT_EQ(count_objects(rb, "Item"), 5);
    add_items(rb, 5, 7);
    CHECK(shoal_session_wait_for_upload(sb, WAIT_MS));
    CHECK(shoal_session_wait_for_download(sa, WAIT_MS));
    CHECK(shoal_realm_refresh(ra, NULL));
    CHECK_INT_EQ(count_objects(ra, "Item"), 7);
    char *dump_a = shoal_realm_dump_json(ra);
    CHECK(shoal_realm_refresh(rb, NULL));
    char *dump_b = shoal_realm_dump_json(rb);
    bool converged = dump_a && dump_b && strcmp(dump_a, dump_b) == 0;
    shoal_free(dump_a);
    shoal_free(dump_b);
    CHECK(converged);

    /* Releasing a token unregisters its callback; free_userdata runs once, after the last call. */
    CHECK(shoal_release(st));
    CHECK(shoal_release(ct));
    CHECK(shoal_release(pt));
    CHECK(wait_for_count(&states.mu, &states.cv, &states.freed, 1));
    CHECK(wait_for_count(&conns.mu, &conns.cv, &conns.freed, 1));
    CHECK(wait_for_count(&up.mu, &up.cv, &up.freed, 1));
    pthread_mutex_lock(&states.mu);
    bool bad = states.bad || conns.bad;
    pthread_mutex_unlock(&states.mu);
    CHECK(!bad);
    CHECK_INT_EQ(states.freed, 1);
    CHECK_INT_EQ(conns.freed, 1);
    CHECK_INT_EQ(up.freed, 1);

    /* Stopping sync (for process exit): every session pauses, queued callbacks run. */
    CHECK(shoal_app_stop_sync(app_a, WAIT_MS));
    CHECK(shoal_app_stop_sync(app_b, WAIT_MS));
    CHECK(wait_for_session_state(sa, SHOAL_SESSION_INACTIVE));
    CHECK(wait_for_session_state(sb, SHOAL_SESSION_INACTIVE));
    CHECK_ERR(!shoal_app_stop_sync(NULL, WAIT_MS), SHOAL_ERR_MISUSE);

    CHECK(shoal_release(sb));
    CHECK(shoal_release(rb));
    CHECK(shoal_release(cb));
    CHECK(shoal_release(scb));
    CHECK(shoal_release(sa));
    CHECK(shoal_release(ra));
    CHECK(shoal_release(ca));
    CHECK(shoal_release(sca));
    CHECK(shoal_release(ub));
    CHECK(shoal_release(ua));
    CHECK(shoal_release(creds));
    CHECK(shoal_release(reg));
    CHECK(shoal_release(app_b));
    CHECK(shoal_release(app_a));
    shoal_free(identity);
    states_seen_destroy(&states);
    states_seen_destroy(&conns);
    pthread_cond_destroy(&up.cv);
    pthread_mutex_destroy(&up.mu);
}

/* What an error handler saw. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    int fatal_calls;
    /* Of the first fatal error: */
    int32_t code;
    int32_t category;
    bool client_reset;
    bool message_ok;
    bool paths_null;
    bool session_ok;          /* the session handle worked during the call */
    shoal_session_t *kept;    /* a clone of that session: the test releases it */
    int freed;
} sync_errors_t;

static void sync_errors_init(sync_errors_t *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void sync_errors_destroy(sync_errors_t *s) {
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

static void on_sync_error(void *userdata, shoal_session_t *session, const shoal_sync_error_t *error) {
    sync_errors_t *s = userdata;
    /* The session is valid during the call; a clone keeps it. */
    int32_t state = shoal_session_state(session);
    char *path = shoal_session_path(session);
    pthread_mutex_lock(&s->mu);
    s->calls++;
    if (error->is_fatal && s->fatal_calls++ == 0) {
        s->code = error->code;
        s->category = error->category;
        s->client_reset = error->is_client_reset;
        s->message_ok = error->message != NULL && error->message[0] != '\0';
        s->paths_null = error->original_path == NULL && error->backup_path == NULL;
        s->session_ok = state >= 0 && path != NULL;
        s->kept = shoal_clone(session);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    shoal_free(path);
}

static void free_sync_errors(void *userdata) {
    sync_errors_t *s = userdata;
    pthread_mutex_lock(&s->mu);
    s->freed++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* What a token binder saw. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    char path[256];
    bool bound;
    int freed;
} binder_seen_t;

static void on_token_needed(void *userdata, shoal_session_t *session, const char *server_path) {
    binder_seen_t *b = userdata;
    /* Answer at once, from the callback, with a token the server did not sign. */
    bool ok = shoal_session_bind_token(session, "not-a-token");
    pthread_mutex_lock(&b->mu);
    b->calls++;
    snprintf(b->path, sizeof b->path, "%s", server_path ? server_path : "(null)");
    b->bound = ok;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void free_binder_seen(void *userdata) {
    binder_seen_t *b = userdata;
    pthread_mutex_lock(&b->mu);
    b->freed++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void test_sync_error_handler_and_token_binder(void) {
    char dir[4096], owner_name[64], other_name[64], url[512], path[512];
    const char *auth = test_auth_url();
    snprintf(owner_name, sizeof owner_name, "c-owner-%ld-%ld", (long)getpid(), (long)time(NULL));
    snprintf(other_name, sizeof other_name, "c-other-%ld-%ld", (long)getpid(), (long)time(NULL));
    shoal_app_t *app = shoal_app_new(path_in(dir, "sync-errors-app"), "io.shoal.tests.c");
    CHECK(app != NULL);
    shoal_credentials_t *c1 = shoal_credentials_password(owner_name, "myPassw0rd", true);
    shoal_credentials_t *c2 = shoal_credentials_password(other_name, "myPassw0rd", true);
    CHECK(c1 != NULL && c2 != NULL);
    shoal_user_t *owner = shoal_app_login(app, c1, auth);
    shoal_user_t *other = shoal_app_login(app, c2, auth);
    CHECK(owner != NULL && other != NULL);
    char *owner_id = shoal_user_identity(owner);
    char *other_id = shoal_user_identity(other);
    CHECK(owner_id != NULL && other_id != NULL);

    /* Access tokens for a token binder: the user's own paths only. */
    snprintf(path, sizeof path, "/%s/mine", other_id);
    char *own_token = shoal_user_access_token(other, path);
    CHECK(own_token != NULL && strlen(own_token) > 0);
    shoal_free(own_token);
    snprintf(path, sizeof path, "/%s/x", owner_id);
    CHECK_ERR(shoal_user_access_token(other, path) == NULL, SHOAL_ERR_ACCESS_DENIED);
    CHECK_ERR(shoal_user_access_token(NULL, path) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_user_access_token(other, NULL) == NULL, SHOAL_ERR_INVALID_ARGUMENT);

    /* `other` opens the owner's realm: the auth service denies the access token, a fatal
     * error for the handler; opening itself never waits on the network. */
    snprintf(path, sizeof path, "/%s/x", owner_id);
    shoal_sync_config_t *sc = shoal_sync_config_new(other, sync_url(url, path));
    CHECK(sc != NULL);
    static sync_errors_t errs;
    sync_errors_init(&errs);
    CHECK(shoal_sync_config_set_error_handler(sc, on_sync_error, &errs, free_sync_errors));
    shoal_config_t *config = synced_config(sc);
    shoal_realm_t *realm = shoal_realm_open(config);
    CHECK(realm != NULL);
    shoal_session_t *session = shoal_realm_get_session(realm);
    CHECK(session != NULL);
    CHECK(wait_for_count(&errs.mu, &errs.cv, &errs.fatal_calls, 1));
    pthread_mutex_lock(&errs.mu);
    int32_t code = errs.code, category = errs.category;
    bool client_reset = errs.client_reset, message_ok = errs.message_ok, paths_null = errs.paths_null,
         session_ok = errs.session_ok;
    shoal_session_t *kept = errs.kept;
    pthread_mutex_unlock(&errs.mu);
    if (code != SHOAL_ERR_ACCESS_DENIED && code != SHOAL_ERR_PERMISSION_DENIED)
        check_failf(__FILE__, __LINE__, "expected ACCESS_DENIED or PERMISSION_DENIED, got %s (%d)",
                    shoal_error_name(code), (int)code);
    CHECK_INT_EQ(category, code == SHOAL_ERR_ACCESS_DENIED ? SHOAL_ERR_CATEGORY_AUTH : SHOAL_ERR_CATEGORY_SYNC);
    CHECK(!client_reset);
    CHECK(message_ok);
    CHECK(paths_null);
    CHECK(session_ok);
    CHECK(kept != NULL);
    CHECK(wait_for_session_state(session, SHOAL_SESSION_ERROR));
    CHECK_INT_EQ(shoal_session_state(kept), SHOAL_SESSION_ERROR); /* the clone is the same session */
    /* Waits report the session's error. */
    CHECK_ERR(!shoal_session_wait_for_upload(session, WAIT_MS), code);
    CHECK_ERR(!shoal_session_wait_for_download(session, WAIT_MS), code);
    /* The realm itself still works, offline. */
    add_items(realm, 0, 1);
    CHECK_INT_EQ(count_objects(realm, "Item"), 1);

    /* A token binder supplies the tokens: a forged one is BAD_AUTHENTICATION (fatal). */
    shoal_sync_config_t *sc2 = shoal_sync_config_new(other, sync_url(url, "/~/forged"));
    CHECK(sc2 != NULL);
    static binder_seen_t binder;
    memset(&binder, 0, sizeof binder);
    pthread_mutex_init(&binder.mu, NULL);
    pthread_cond_init(&binder.cv, NULL);
    static sync_errors_t errs2;
    sync_errors_init(&errs2);
    CHECK(shoal_sync_config_set_token_binder(sc2, on_token_needed, &binder, free_binder_seen));
    CHECK(shoal_sync_config_set_error_handler(sc2, on_sync_error, &errs2, free_sync_errors));
    shoal_config_t *config2 = synced_config(sc2);
    shoal_realm_t *realm2 = shoal_realm_open(config2);
    CHECK(realm2 != NULL);
    shoal_session_t *session2 = shoal_realm_get_session(realm2);
    CHECK(session2 != NULL);
    CHECK(wait_for_count(&errs2.mu, &errs2.cv, &errs2.fatal_calls, 1));
    CHECK(wait_for_count(&binder.mu, &binder.cv, &binder.calls, 1));
    pthread_mutex_lock(&errs2.mu);
    code = errs2.code;
    category = errs2.category;
    kept = errs2.kept;
    pthread_mutex_unlock(&errs2.mu);
    CHECK_INT_EQ(code, SHOAL_ERR_BAD_AUTHENTICATION);
    CHECK_INT_EQ(category, SHOAL_ERR_CATEGORY_SYNC);
    CHECK_STR_EQ(shoal_error_name(code), "BAD_AUTHENTICATION");
    CHECK(kept != NULL);
    char expected_path[256];
    snprintf(expected_path, sizeof expected_path, "/%s/forged", other_id);
    pthread_mutex_lock(&binder.mu);
    bool binder_ok = binder.bound && strcmp(binder.path, expected_path) == 0;
    pthread_mutex_unlock(&binder.mu);
    CHECK(binder_ok);
    CHECK(wait_for_session_state(session2, SHOAL_SESSION_ERROR));
    CHECK_ERR(!shoal_session_bind_token(session2, ""), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_session_bind_token(session2, NULL), SHOAL_ERR_INVALID_ARGUMENT);

    /* free_userdata of the handler and the binder runs once nothing uses them any more. */
    CHECK(shoal_release(errs2.kept));
    CHECK(shoal_release(session2));
    CHECK(shoal_release(realm2));
    CHECK(shoal_release(config2));
    CHECK(shoal_release(sc2));
    CHECK(shoal_release(errs.kept));
    CHECK(shoal_release(session));
    CHECK(shoal_release(realm));
    CHECK(shoal_release(config));
    CHECK(shoal_release(sc));
    CHECK(wait_for_count(&errs.mu, &errs.cv, &errs.freed, 1));
    CHECK(wait_for_count(&errs2.mu, &errs2.cv, &errs2.freed, 1));
    CHECK(wait_for_count(&binder.mu, &binder.cv, &binder.freed, 1));
    CHECK_INT_EQ(errs.freed, 1);
    CHECK_INT_EQ(errs2.freed, 1);
    CHECK_INT_EQ(binder.freed, 1);

    /* A logged-out user cannot make sync configurations. */
    CHECK(shoal_user_logout(other));
    CHECK_ERR(shoal_sync_config_new(other, sync_url(url, "/~/x")) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    /* Let the background revocation finish before the app goes. */
    uint64_t pending = 1;
    for (int i = 0; i < WAIT_SECONDS * 50 && pending > 0; i++) {
        CHECK(shoal_app_pending_revocations(app, &pending));
        if (pending > 0) sleep_ms(20);
    }
    CHECK_INT_EQ(pending, 0);

    CHECK(shoal_release(other));
    CHECK(shoal_release(owner));
    CHECK(shoal_release(c2));
    CHECK(shoal_release(c1));
    CHECK(shoal_release(app));
    shoal_free(owner_id);
    shoal_free(other_id);
    sync_errors_destroy(&errs);
    sync_errors_destroy(&errs2);
    pthread_cond_destroy(&binder.cv);
    pthread_mutex_destroy(&binder.mu);
}

static void ignore_progress(void *userdata, uint64_t transferred, uint64_t transferable) {
    (void)userdata;
    (void)transferred;
    (void)transferable;
}

static void ignore_states(void *userdata, int32_t old_state, int32_t new_state) {
    (void)userdata;
    (void)old_state;
    (void)new_state;
}

static void test_sync_session_handles_pause_and_client_reset(void) {
    char dir[4096], name[64], url[512];
    const char *auth = test_auth_url();

    /* NULL: an error, never a crash; free_userdata runs when a registration fails. */
    CHECK_ERR(shoal_session_state(NULL) == -1, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_session_connection_state(NULL) == -1, SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_session_pause(NULL), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_session_resume(NULL), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_session_bind_token(NULL, "token"), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_session_wait_for_upload(NULL, 10), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_session_wait_for_download(NULL, 10), SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_session_path(NULL) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_session_server_url(NULL) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_session_user(NULL) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_realm_get_session(NULL) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_app_get_session(NULL, NULL) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_app_execute_client_reset(NULL, "x") == NULL, SHOAL_ERR_MISUSE);
    g_sync_frees = 0;
    CHECK_ERR(shoal_session_add_state_callback(NULL, ignore_states, NULL, count_sync_free) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_session_add_connection_callback(NULL, ignore_states, NULL, count_sync_free) == NULL,
              SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_session_add_progress_callback(NULL, SHOAL_PROGRESS_UPLOAD, SHOAL_PROGRESS_INDEFINITELY,
                                                  ignore_progress, NULL, count_sync_free) == NULL,
              SHOAL_ERR_MISUSE);
    CHECK_INT_EQ(sync_frees(), 3);

    snprintf(name, sizeof name, "c-pause-%ld-%ld", (long)getpid(), (long)time(NULL));
    shoal_app_t *app = shoal_app_new(path_in(dir, "sync-pause-app"), "io.shoal.tests.c");
    CHECK(app != NULL);
    /* A handle of another kind is a misuse too. */
    CHECK_ERR(shoal_session_state((const shoal_session_t *)app) == -1, SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_session_pause((shoal_session_t *)app), SHOAL_ERR_MISUSE);
    shoal_credentials_t *reg = shoal_credentials_password(name, "myPassw0rd", true);
    CHECK(reg != NULL);
    shoal_user_t *user = shoal_app_login(app, reg, auth);
    CHECK(user != NULL);
    shoal_sync_config_t *sc = shoal_sync_config_new(user, sync_url(url, "/~/paused"));
    CHECK(sc != NULL);
    CHECK(shoal_sync_config_set_stop_policy(sc, SHOAL_STOP_POLICY_AFTER_CHANGES_UPLOADED));
    shoal_config_t *config = synced_config(sc);
    shoal_realm_t *realm = shoal_realm_open(config);
    CHECK(realm != NULL);
    shoal_session_t *session = shoal_realm_get_session(realm);
    CHECK(session != NULL);
    add_items(realm, 0, 2);
    CHECK(shoal_session_wait_for_upload(session, WAIT_MS));

    /* Bad registrations: invalid arguments, and free_userdata has run. */
    CHECK_ERR(shoal_session_add_progress_callback(session, 0, SHOAL_PROGRESS_INDEFINITELY, ignore_progress, NULL,
                                                  count_sync_free) == NULL,
              SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_session_add_progress_callback(session, SHOAL_PROGRESS_DOWNLOAD, 2, ignore_progress, NULL,
                                                  count_sync_free) == NULL,
              SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_session_add_progress_callback(session, SHOAL_PROGRESS_DOWNLOAD, SHOAL_PROGRESS_INDEFINITELY, NULL,
                                                  NULL, count_sync_free) == NULL,
              SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(shoal_session_add_state_callback(session, NULL, NULL, count_sync_free) == NULL,
              SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(sync_frees(), 7);

    /* Paused: INACTIVE, local writes go on, waits time out; resumed: they upload. */
    CHECK(shoal_session_pause(session));
    CHECK(wait_for_session_state(session, SHOAL_SESSION_INACTIVE));
    add_items(realm, 2, 3);
    CHECK_ERR(!shoal_session_wait_for_upload(session, 50), SHOAL_ERR_TIMEOUT);
    shoal_error_t e;
    CHECK(shoal_get_last_error(&e));
    CHECK_INT_EQ(e.category, SHOAL_ERR_CATEGORY_CLIENT);
    CHECK_STR_EQ(shoal_error_name(e.code), "TIMEOUT");
    CHECK_ERR(!shoal_session_wait_for_download(session, 1), SHOAL_ERR_TIMEOUT);
    CHECK(shoal_session_resume(session));
    CHECK(shoal_session_wait_for_upload(session, WAIT_MS));
    CHECK(wait_for_session_state(session, SHOAL_SESSION_ACTIVE));

    /* Released handles: errors, never a crash. */
    shoal_session_t *clone = shoal_clone(session);
    CHECK(clone != NULL);
    CHECK(shoal_release(clone));
    CHECK_ERR(shoal_session_state(clone) == -1, SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_session_pause(clone), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_session_wait_for_upload(clone, 10), SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_session_path(clone) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_release(clone), SHOAL_ERR_MISUSE);
    CHECK_INT_EQ(shoal_session_state(session), SHOAL_SESSION_ACTIVE); /* the original still works */

    /* Client reset: refused while the realm is open; once it is released and the session has
     * stopped, the file moves aside and opens read-only for recovery. */
    char *original = shoal_session_path(session);
    CHECK(original != NULL);
    char *backup = shoal_app_execute_client_reset(app, original);
    if (backup) {
        shoal_free(backup);
        shoal_free(original);
        check_failf(__FILE__, __LINE__, "a client reset of an open realm succeeded");
    }
    CHECK_ERR(backup == NULL, SHOAL_ERR_REALM_IN_USE);
    CHECK_ERR(shoal_app_execute_client_reset(app, NULL) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK(shoal_release(realm));
    /* AFTER_CHANGES_UPLOADED: the session uploads what is left, then stops. */
    CHECK(wait_for_session_state(session, SHOAL_SESSION_INACTIVE));
    for (int i = 0; i < WAIT_SECONDS * 50 && !backup; i++) {
        backup = shoal_app_execute_client_reset(app, original);
        if (!backup) {
            shoal_error_t re;
            if (!shoal_get_last_error(&re) || re.code != SHOAL_ERR_REALM_IN_USE) break;
            sleep_ms(20);
        }
    }
    if (!backup) shoal_free(original);
    CHECK(backup != NULL);
    bool moved = !file_exists(original) && file_exists(backup) && strstr(backup, "recovered-realms") != NULL;
    shoal_free(original);
    if (!moved) shoal_free(backup);
    CHECK(moved);
    shoal_schema_t *schema = item_schema();
    shoal_config_t *rc = shoal_config_for_recovery(backup, NULL, 0, schema);
    shoal_free(backup);
    CHECK(shoal_release(schema));
    CHECK(rc != NULL);
    shoal_realm_t *recovered = shoal_realm_open(rc);
    CHECK(recovered != NULL);
    CHECK_INT_EQ(count_objects(recovered, "Item"), 3);
    CHECK_ERR(!shoal_realm_begin_write(recovered), SHOAL_ERR_READ_ONLY);
    CHECK_ERR(shoal_realm_get_session(recovered) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK(shoal_release(recovered));
    CHECK(shoal_release(rc));

    CHECK(shoal_release(session));
    CHECK(shoal_release(config));
    CHECK(shoal_release(sc));
    CHECK(shoal_release(user));
    CHECK(shoal_release(reg));
    CHECK(shoal_release(app));
}

/* What a client-reset error handler kept: the paths, and a clone of the backup config. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int resets;
    char original[4096];
    char backup[4096];
    bool config_matches;      /* during the call, backup_config's path was backup_path */
    shoal_config_t *backup_config; /* a clone: the test releases it */
} reset_seen_t;

static void on_reset_error(void *userdata, shoal_session_t *session, const shoal_sync_error_t *error) {
    (void)session;
    reset_seen_t *r = userdata;
    if (!error->is_client_reset) return;
    char *path = error->backup_config ? shoal_config_get_path(error->backup_config) : NULL;
    pthread_mutex_lock(&r->mu);
    if (r->resets++ == 0) {
        snprintf(r->original, sizeof r->original, "%s", error->original_path ? error->original_path : "");
        snprintf(r->backup, sizeof r->backup, "%s", error->backup_path ? error->backup_path : "");
        r->config_matches = path && error->backup_path && strcmp(path, error->backup_path) == 0;
        /* Borrowed for the call: a clone keeps it. */
        r->backup_config = error->backup_config ? shoal_clone(error->backup_config) : NULL;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    shoal_free(path);
}

static bool copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (!in) return false;
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return false;
    }
    char buf[65536];
    size_t n;
    bool ok = true;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (fwrite(buf, 1, n, out) != n) {
            ok = false;
            break;
        }
    }
    fclose(in);
    if (fclose(out) != 0) ok = false;
    return ok;
}

/* `recovered-realms/recovered_realm-YYYYMMDD-HHMMSS-XXXXXXXX` at the end of `path`. */
static bool is_backup_path(const char *path) {
    const char *name = strstr(path, "/recovered-realms/recovered_realm-");
    if (!name) return false;
    name += strlen("/recovered-realms/recovered_realm-");
    if (strlen(name) != 8 + 1 + 6 + 1 + 8 || name[8] != '-' || name[15] != '-') return false;
    for (int i = 0; i < 24; i++) {
        if (i == 8 || i == 15) continue;
        bool digit = name[i] >= '0' && name[i] <= '9';
        bool letter = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z');
        if (i < 15 ? !digit : !(digit || letter)) return false;
    }
    return true;
}

static void test_sync_client_reset_at_the_next_open_with_a_backup_config(void) {
    char dir[4096], name[64], url[512];
    uint8_t key[64];
    memset(key, 0x5a, sizeof key);
    snprintf(name, sizeof name, "c-reset-%ld-%ld", (long)getpid(), (long)time(NULL));
    shoal_app_t *app = shoal_app_new(path_in(dir, "sync-reset-app"), "io.shoal.tests.c");
    CHECK(app != NULL);
    shoal_credentials_t *reg = shoal_credentials_password(name, "myPassw0rd", true);
    shoal_user_t *user = shoal_app_login(app, reg, test_auth_url());
    CHECK(user != NULL);

    /* A synced, encrypted file of another path, with 2 items; closed once uploaded. */
    shoal_sync_config_t *donor_sc = shoal_sync_config_new(user, sync_url(url, "/~/donor"));
    CHECK(donor_sc != NULL);
    shoal_config_t *donor = synced_config(donor_sc);
    CHECK(shoal_config_set_encryption_key(donor, key, sizeof key));
    shoal_realm_t *realm = shoal_realm_open(donor);
    CHECK(realm != NULL);
    shoal_session_t *session = shoal_realm_get_session(realm);
    add_items(realm, 0, 2);
    CHECK(shoal_session_wait_for_upload(session, WAIT_MS));
    CHECK(shoal_release(realm));
    CHECK(wait_for_session_state(session, SHOAL_SESSION_INACTIVE));
    CHECK(shoal_release(session));

    /* Copied over another path's file: the server does not know its client file ident
     * (BAD_CLIENT_FILE_IDENT, a client reset). */
    reset_seen_t seen;
    memset(&seen, 0, sizeof seen);
    pthread_mutex_init(&seen.mu, NULL);
    pthread_cond_init(&seen.cv, NULL);
    shoal_sync_config_t *sc = shoal_sync_config_new(user, sync_url(url, "/~/reset"));
    CHECK(sc != NULL);
    CHECK(shoal_sync_config_set_error_handler(sc, on_reset_error, &seen, NULL));
    shoal_config_t *config = synced_config(sc);
    CHECK(shoal_config_set_encryption_key(config, key, sizeof key));
    char *donor_path = shoal_config_get_path(donor);
    char *path = shoal_config_get_path(config);
    CHECK(donor_path != NULL && path != NULL);
    CHECK(copy_file(donor_path, path));

    realm = shoal_realm_open(config);
    CHECK(realm != NULL);
    session = shoal_realm_get_session(realm);
    CHECK(wait_for_count(&seen.mu, &seen.cv, &seen.resets, 1));
    pthread_mutex_lock(&seen.mu);
    bool paths_ok = strcmp(seen.original, path) == 0 && is_backup_path(seen.backup) && !file_exists(seen.backup);
    bool config_ok = seen.config_matches && seen.backup_config != NULL;
    pthread_mutex_unlock(&seen.mu);
    CHECK(paths_ok);
    CHECK(config_ok);
    CHECK(wait_for_session_state(session, SHOAL_SESSION_ERROR));
    add_items(realm, 10, 11); /* after the error: in the backup only */

    /* Not executed by hand: once every handle is released, the next open runs the reset,
     * to the announced path, and starts over with the server. */
    CHECK(shoal_release(realm));
    CHECK(shoal_release(session));
    realm = shoal_realm_open(config);
    CHECK(realm != NULL);
    CHECK(file_exists(seen.backup));
    CHECK_INT_EQ(count_objects(realm, "Item"), 0);
    session = shoal_realm_get_session(realm);
    add_items(realm, 20, 21);
    CHECK(shoal_session_wait_for_upload(session, WAIT_MS));
    CHECK_INT_EQ(shoal_session_state(session), SHOAL_SESSION_ACTIVE);
    /* Executing it by hand now: nothing pending, and the realm is open. */
    CHECK_ERR(shoal_app_execute_client_reset(app, path) == NULL, SHOAL_ERR_REALM_IN_USE);

    /* The backup config opens the backup: the original's key and schema, read-only. */
    if (seen.backup_config) {
        CHECK(shoal_config_is_read_only(seen.backup_config));
        uint8_t got_key[64] = {0};
        CHECK(shoal_config_encryption_key(seen.backup_config, NULL, 0) == 64);
        CHECK(shoal_config_encryption_key(seen.backup_config, got_key, sizeof got_key) == 64);
        CHECK(memcmp(got_key, key, sizeof key) == 0);
        CHECK_ERR(shoal_config_encryption_key(seen.backup_config, got_key, 10) == -1, SHOAL_ERR_INVALID_ARGUMENT);
        uint64_t version = 99;
        CHECK(shoal_config_schema_version(seen.backup_config, &version));
        CHECK(version == 0);
        shoal_schema_t *backup_schema = shoal_config_schema(seen.backup_config);
        CHECK(backup_schema != NULL);
        char *json = backup_schema ? shoal_schema_to_json(backup_schema) : NULL;
        CHECK(json != NULL && strstr(json, "\"Item\"") != NULL);
        shoal_free(json);
        shoal_release(backup_schema);
        shoal_realm_t *recovered = shoal_realm_open(seen.backup_config);
        CHECK(recovered != NULL);
        if (recovered) {
            CHECK_INT_EQ(count_objects(recovered, "Item"), 3);
            CHECK_ERR(!shoal_realm_begin_write(recovered), SHOAL_ERR_READ_ONLY);
            CHECK_ERR(shoal_realm_get_session(recovered) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
            CHECK(shoal_release(recovered));
        }
        CHECK(shoal_release(seen.backup_config));
    }
    /* Without the key it does not open. A configuration without key or schema says so. */
    shoal_config_t *no_key = shoal_config_for_recovery(seen.backup, NULL, 0, NULL);
    CHECK(no_key != NULL);
    CHECK(shoal_config_encryption_key(no_key, NULL, 0) == 0);
    CHECK(shoal_config_schema(no_key) == NULL && !shoal_get_last_error(NULL));
    CHECK(!shoal_config_is_read_only(config) && !shoal_get_last_error(NULL));
    CHECK_ERR(!shoal_config_is_read_only(NULL), SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_config_schema(NULL) == NULL, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_config_encryption_key(NULL, NULL, 0) == -1, SHOAL_ERR_MISUSE);
    CHECK_ERR(shoal_realm_open(no_key) == NULL, SHOAL_ERR_DECRYPTION_FAILED);
    CHECK(shoal_release(no_key));

    CHECK(shoal_release(realm));
    CHECK(shoal_release(session));
    shoal_free(path);
    shoal_free(donor_path);
    CHECK(shoal_release(config));
    CHECK(shoal_release(sc));
    CHECK(shoal_release(donor));
    CHECK(shoal_release(donor_sc));
    CHECK(shoal_release(user));
    CHECK(shoal_release(reg));
    CHECK(shoal_release(app));
    pthread_cond_destroy(&seen.cv);
    pthread_mutex_destroy(&seen.mu);
}

/* The local file's name and root (Realm's name()/directory()), a user's sessions (ERROR ones
 * left out), the default error handler, and logout deleting the user's files. */
static void test_sync_files_sessions_and_default_handler(void) {
    char dir[4096], root[4096], file[4096], owner_name[64], user_name[64], url[512], path[512];
    const char *auth = test_auth_url();
    snprintf(owner_name, sizeof owner_name, "c-fowner-%ld-%ld", (long)getpid(), (long)time(NULL));
    snprintf(user_name, sizeof user_name, "c-files-%ld-%ld", (long)getpid(), (long)time(NULL));
    shoal_app_t *app = shoal_app_new(path_in(dir, "sync-files-app"), "io.shoal.tests.c");
    CHECK(app != NULL);
    shoal_credentials_t *c1 = shoal_credentials_password(owner_name, "myPassw0rd", true);
    shoal_credentials_t *c2 = shoal_credentials_password(user_name, "myPassw0rd", true);
    CHECK(c1 != NULL && c2 != NULL);
    shoal_user_t *owner = shoal_app_login(app, c1, auth);
    shoal_user_t *user = shoal_app_login(app, c2, auth);
    CHECK(owner != NULL && user != NULL);
    char *owner_id = shoal_user_identity(owner);
    char *user_id = shoal_user_identity(user);
    CHECK(owner_id != NULL && user_id != NULL);

    /* name() and directory(): NULL, empty, a file, an unwritable directory are refused. */
    shoal_sync_config_t *sc = shoal_sync_config_new(user, sync_url(url, "/~/sub/tasks"));
    CHECK(sc != NULL);
    char *before = shoal_sync_config_path(sc);
    CHECK(before != NULL);
    char *default_root = shoal_sync_config_directory(sc);
    CHECK(default_root != NULL && strstr(default_root, "shoal-object-server") != NULL);
    shoal_free(default_root);
    CHECK_ERR(!shoal_sync_config_set_name(sc, NULL), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_sync_config_set_name(sc, ""), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_sync_config_set_name(sc, ".."), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_sync_config_set_name(NULL, "x"), SHOAL_ERR_MISUSE);
    CHECK_ERR(!shoal_sync_config_set_directory(sc, NULL), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_sync_config_set_directory(sc, ""), SHOAL_ERR_INVALID_ARGUMENT);
    FILE *f = fopen(path_in(file, "not-a-directory"), "w");
    CHECK(f != NULL);
    fclose(f);
    CHECK_ERR(!shoal_sync_config_set_directory(sc, file), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_ERR(!shoal_sync_config_set_directory(sc, "/proc"), SHOAL_ERR_INVALID_ARGUMENT);
    char *unchanged = shoal_sync_config_path(sc);
    CHECK_STR_EQ(unchanged, before);
    shoal_free(unchanged);
    shoal_free(before);
    CHECK(shoal_sync_config_set_directory(sc, path_in(root, "elsewhere")));
    CHECK(shoal_sync_config_set_name(sc, "named"));
    CHECK(shoal_sync_config_set_stop_policy(sc, SHOAL_STOP_POLICY_IMMEDIATELY));
    char real_root[PATH_MAX];
    CHECK(realpath(root, real_root) != NULL);
    char *got_root = shoal_sync_config_directory(sc);
    CHECK_STR_EQ(got_root, real_root);
    shoal_free(got_root);
    char expected[3 * PATH_MAX];
    snprintf(expected, sizeof expected, "%s/%s/%s/sub/named", real_root, user_id, user_id);
    char *placed = shoal_sync_config_path(sc);
    CHECK_STR_EQ(placed, expected);
    shoal_free(placed);

    /* The realm syncs from there; the user's sessions list it. */
    shoal_config_t *config = synced_config(sc);
    shoal_realm_t *realm = shoal_realm_open(config);
    CHECK(realm != NULL);
    add_items(realm, 0, 3);
    shoal_session_t *session = shoal_realm_get_session(realm);
    CHECK(session != NULL);
    CHECK(shoal_session_wait_for_upload(session, WAIT_MS));
    CHECK(file_exists(expected));

    /* A session stopped by an error (another user's path) is left out of the user's sessions;
     * its error goes to the default handler, which configs made while it is set start with. */
    static sync_errors_t errs;
    sync_errors_init(&errs);
    CHECK(shoal_set_default_sync_error_handler(on_sync_error, &errs, free_sync_errors));
    snprintf(path, sizeof path, "/%s/private", owner_id);
    shoal_sync_config_t *refused_sc = shoal_sync_config_new(user, sync_url(url, path));
    CHECK(refused_sc != NULL);
    CHECK(shoal_set_default_sync_error_handler(NULL, NULL, NULL)); /* the built-in one again */
    shoal_config_t *refused_config = synced_config(refused_sc);
    shoal_realm_t *refused = shoal_realm_open(refused_config);
    CHECK(refused != NULL);
    shoal_session_t *refused_session = shoal_realm_get_session(refused);
    CHECK(refused_session != NULL);
    CHECK(wait_for_count(&errs.mu, &errs.cv, &errs.fatal_calls, 1));
    CHECK(wait_for_session_state(refused_session, SHOAL_SESSION_ERROR));
    pthread_mutex_lock(&errs.mu);
    int32_t code = errs.code;
    pthread_mutex_unlock(&errs.mu);
    CHECK_INT_EQ(code, SHOAL_ERR_ACCESS_DENIED);

    CHECK_ERR(shoal_user_all_sessions(NULL, NULL, 0) == -1, SHOAL_ERR_MISUSE);
    shoal_session_t *listed[4] = {NULL, NULL, NULL, NULL};
    CHECK_ERR(shoal_user_all_sessions(user, NULL, 4) == -1, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(shoal_user_all_sessions(user, NULL, 0), 1);
    CHECK_INT_EQ(shoal_user_all_sessions(user, listed, 4), 1);
    CHECK(listed[0] != NULL && listed[1] == NULL);
    char *listed_path = shoal_session_path(listed[0]);
    CHECK_STR_EQ(listed_path, expected);
    shoal_free(listed_path);
    CHECK(shoal_release(listed[0]));
    CHECK_INT_EQ(shoal_user_all_sessions(owner, NULL, 0), 0);

    CHECK(shoal_release(errs.kept));
    CHECK(shoal_release(refused_session));
    CHECK(shoal_release(refused));
    CHECK(shoal_release(refused_config));
    CHECK(shoal_release(refused_sc));
    CHECK(wait_for_count(&errs.mu, &errs.cv, &errs.freed, 1));
    CHECK_INT_EQ(errs.freed, 1);

    /* Logout with no realm open deletes the user's files at once (the folders under the given
     * directory with them; the directory itself stays). */
    CHECK(shoal_release(realm));
    CHECK(wait_for_session_state(session, SHOAL_SESSION_INACTIVE));
    CHECK(shoal_user_logout(user));
    CHECK(!file_exists(expected));
    char user_dir[2 * PATH_MAX];
    snprintf(user_dir, sizeof user_dir, "%s/%s", real_root, user_id);
    CHECK(!file_exists(user_dir));
    CHECK(file_exists(real_root));

    uint64_t pending = 1;
    for (int i = 0; i < WAIT_SECONDS * 50 && pending > 0; i++) {
        CHECK(shoal_app_pending_revocations(app, &pending));
        if (pending > 0) sleep_ms(20);
    }
    CHECK_INT_EQ(pending, 0);
    CHECK(shoal_release(session));
    CHECK(shoal_release(config));
    CHECK(shoal_release(sc));
    CHECK(shoal_release(user));
    CHECK(shoal_release(owner));
    CHECK(shoal_release(c2));
    CHECK(shoal_release(c1));
    CHECK(shoal_release(app));
    shoal_free(owner_id);
    shoal_free(user_id);
    sync_errors_destroy(&errs);
}

/* ------------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------------------------ */
/* Async work: writes on a library thread, cancellable opens, lookups, all delivered through  */
/* an app scheduler this program drives from its main thread                                   */

/* An app scheduler's wake-ups: notify runs on a library thread and only counts (an event loop
 * would post a message); the main thread then calls shoal_scheduler_perform_work. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int notified;
    int freed;
} wakeups_t;

/* What the async tests record when a callback got no error (every int32 may be a code). */
#define NO_ERROR_CODE INT32_MIN

static void on_wakeup(void *userdata) {
    wakeups_t *w = userdata;
    pthread_mutex_lock(&w->mu);
    w->notified++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void free_wakeups(void *userdata) {
    wakeups_t *w = userdata;
    pthread_mutex_lock(&w->mu);
    w->freed++;
    pthread_mutex_unlock(&w->mu);
}

static shoal_scheduler_t *new_app_scheduler(wakeups_t *w) {
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    shoal_scheduler_t *s = shoal_scheduler_new(on_wakeup, w, free_wakeups);
    CHECK(s != NULL);
    return s;
}

/* The main thread's "event loop": waits (up to WAIT_SECONDS) for a wake-up, then runs the
 * scheduler's work here; returns how many pieces ran. */
static size_t run_loop_once(shoal_scheduler_t *s, wakeups_t *w) {
    struct timespec deadline = deadline_from_now();
    pthread_mutex_lock(&w->mu);
    while (w->notified == 0) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &deadline) != 0) break;
    }
    w->notified = 0;
    pthread_mutex_unlock(&w->mu);
    size_t ran = 0;
    CHECK(shoal_scheduler_perform_work(s, &ran));
    return ran;
}

/* What an async write saw. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t first_id, count; /* the Person ids it creates */
    bool fail;                /* return false after writing */
    bool bad_class;           /* make a failing Shoal call, then return false */
    pthread_t writer;
    bool wrote_off_main;
    int completions;
    bool completed_on_main;
    int32_t error_code;
    uint64_t version;
    int freed;
} write_job_t;

static void write_job_init(write_job_t *j, int64_t first_id, int64_t count) {
    memset(j, 0, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->first_id = first_id;
    j->count = count;
    j->error_code = -12345;
}

static bool write_people(void *userdata, shoal_realm_t *realm) {
    write_job_t *j = userdata;
    j->wrote_off_main = !pthread_equal(pthread_self(), g_main_thread);
    if (!shoal_realm_is_in_transaction(realm)) return false;
    for (int64_t id = j->first_id; id < j->first_id + j->count; id++) {
        shoal_value_t pk = shoal_value_int(id);
        shoal_object_t *o = shoal_object_create(realm, "Person", &pk);
        if (!o) return false;
        shoal_release(o);
    }
    if (j->bad_class) {
        shoal_value_t pk = shoal_value_int(1);
        return shoal_object_create(realm, "NoSuchClass", &pk) != NULL;
    }
    return !j->fail;
}

static void write_done(void *userdata, const shoal_error_t *error, uint64_t version) {
    write_job_t *j = userdata;
    pthread_mutex_lock(&j->mu);
    j->completions++;
    j->completed_on_main = pthread_equal(pthread_self(), g_main_thread);
    j->error_code = error ? error->code : NO_ERROR_CODE;
    j->version = version;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void free_write_job(void *userdata) {
    write_job_t *j = userdata;
    pthread_mutex_lock(&j->mu);
    j->freed++;
    pthread_mutex_unlock(&j->mu);
}

static void test_write_async_completes_on_the_app_scheduler(void) {
    g_main_thread = pthread_self();
    static wakeups_t wake;
    shoal_scheduler_t *sched = new_app_scheduler(&wake);
    shoal_config_t *c = people_config("write-async.realm");
    CHECK(shoal_config_set_scheduler(c, sched));
    shoal_realm_t *r = shoal_realm_open(c);
    CHECK(r != NULL);

    static write_job_t ok;
    write_job_init(&ok, 1, 3);
    CHECK(shoal_realm_write_async(r, write_people, write_done, &ok, free_write_job));
    /* The main thread is free meanwhile; the completion waits for the loop. */
    CHECK(!shoal_realm_is_in_transaction(r));
    CHECK_INT_EQ(run_loop_once(sched, &wake), 1);
    CHECK_INT_EQ(ok.completions, 1);
    CHECK(ok.wrote_off_main);
    CHECK(ok.completed_on_main);
    CHECK_INT_EQ(ok.error_code, NO_ERROR_CODE);
    CHECK_INT_EQ(ok.freed, 1);
    /* The handle was refreshed before the completion ran. */
    CHECK_INT_EQ(count_objects(r, "Person"), 3);
    uint64_t v = 0;
    CHECK(shoal_realm_version(r, &v));
    CHECK_INT_EQ(v, ok.version);

    /* false writes nothing; the completion gets CALLBACK_FAILED, or the error of the failed
     * Shoal call the write function made. */
    static write_job_t refused, failed;
    write_job_init(&refused, 10, 2);
    refused.fail = true;
    write_job_init(&failed, 20, 2);
    failed.bad_class = true;
    CHECK(shoal_realm_write_async(r, write_people, write_done, &refused, free_write_job));
    CHECK(shoal_realm_write_async(r, write_people, write_done, &failed, free_write_job));
    size_t ran = 0;
    for (int i = 0; i < 2 && ran < 2; i++) ran += run_loop_once(sched, &wake);
    CHECK_INT_EQ(ran, 2);
    CHECK_INT_EQ(refused.completions, 1);
    CHECK_INT_EQ(refused.error_code, SHOAL_ERR_CALLBACK_FAILED);
    CHECK_INT_EQ(failed.completions, 1);
    CHECK_INT_EQ(failed.error_code, SHOAL_ERR_NO_SUCH_CLASS);
    CHECK(shoal_realm_refresh(r, NULL));
    CHECK_INT_EQ(count_objects(r, "Person"), 3);
    CHECK_INT_EQ(refused.freed + failed.freed, 2);

    /* Refused at once: NULL callbacks, a closed realm. free_userdata runs, nothing else. */
    static write_job_t never;
    write_job_init(&never, 30, 1);
    CHECK_ERR(!shoal_realm_write_async(r, write_people, NULL, &never, free_write_job), SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(never.freed, 1);
    CHECK(shoal_realm_close(r));
    CHECK_ERR(!shoal_realm_write_async(r, write_people, write_done, &never, free_write_job), SHOAL_ERR_REALM_CLOSED);
    CHECK_INT_EQ(never.freed, 2);
    CHECK_INT_EQ(never.completions, 0);

    CHECK(shoal_release(r));
    CHECK(shoal_release(c));
    CHECK(shoal_release(sched));
    CHECK_INT_EQ(wake.freed, 1);
}

/* What an async open's callback saw. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    shoal_realm_t *realm; /* owned by the test once set */
    int32_t error_code;
    bool on_main;
    int freed;
} open_job_t;

static void open_job_init(open_job_t *j) {
    memset(j, 0, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->error_code = -12345;
}

static void opened(void *userdata, shoal_realm_t *realm, const shoal_error_t *error) {
    open_job_t *j = userdata;
    pthread_mutex_lock(&j->mu);
    j->calls++;
    j->on_main = pthread_equal(pthread_self(), g_main_thread);
    if (j->realm == NULL) {
        j->realm = realm;
    } else if (realm) {
        shoal_release(realm);
    }
    j->error_code = error ? error->code : NO_ERROR_CODE;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void free_open_job(void *userdata) {
    open_job_t *j = userdata;
    pthread_mutex_lock(&j->mu);
    j->freed++;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void test_open_async_local_and_cancelled(void) {
    char path[4096];
    g_main_thread = pthread_self();
    static wakeups_t wake;
    shoal_scheduler_t *sched = new_app_scheduler(&wake);
    shoal_config_t *c = people_config("open-async.realm");
    CHECK(shoal_config_set_scheduler(c, sched));
    path_in(path, "open-async.realm");

    /* Opened: the callback runs on the loop with the realm. */
    static open_job_t ok;
    open_job_init(&ok);
    shoal_async_open_task_t *task = shoal_realm_open_async(c, opened, &ok, free_open_job);
    CHECK(task != NULL);
    CHECK_INT_EQ(run_loop_once(sched, &wake), 1);
    CHECK_INT_EQ(ok.calls, 1);
    CHECK(ok.on_main);
    CHECK_INT_EQ(ok.error_code, NO_ERROR_CODE);
    CHECK(ok.realm != NULL);
    CHECK_INT_EQ(count_objects(ok.realm, "Person"), 0);
    CHECK_INT_EQ(ok.freed, 1);
    bool cancelled = true;
    CHECK(shoal_async_open_task_cancel(task, &cancelled));
    CHECK(!cancelled); /* too late: the callback has the realm */
    CHECK(shoal_release(task));
    CHECK(shoal_release(ok.realm));
    CHECK(shoal_delete_realm_files(c));
    CHECK(!file_exists(path));

    /* Cancelled after the open finished but before the loop ran the callback: the callback
     * never runs, and the new file is gone when the cancel returns. */
    static open_job_t never;
    open_job_init(&never);
    task = shoal_realm_open_async(c, opened, &never, free_open_job);
    CHECK(task != NULL);
    struct timespec deadline = deadline_from_now();
    pthread_mutex_lock(&wake.mu);
    while (wake.notified == 0 && pthread_cond_timedwait(&wake.cv, &wake.mu, &deadline) == 0) {
    }
    wake.notified = 0;
    pthread_mutex_unlock(&wake.mu);
    CHECK(file_exists(path));
    cancelled = false;
    CHECK(shoal_async_open_task_cancel(task, &cancelled));
    CHECK(cancelled);
    CHECK(!file_exists(path));
    CHECK_INT_EQ(never.freed, 1); /* the callback's userdata is let go by the cancel */
    size_t ran = 0;
    CHECK(shoal_scheduler_perform_work(sched, &ran));
    CHECK_INT_EQ(never.calls, 0);
    CHECK_INT_EQ(never.freed, 1);
    CHECK(shoal_release(task));
    CHECK_ERR(shoal_realm_open_async(c, NULL, &never, free_open_job) == NULL, SHOAL_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(never.freed, 2);

    CHECK(shoal_release(c));
    CHECK(shoal_release(sched));
}

/* Seed 001's waitForInitialData_resilientInCaseOfRetriesAsync through the C ABI: ten async
 * opens that wait for the initial data, each cancelled after 0-4 ms: no callback ever runs
 * and no file is left; then one that is not cancelled gets every item. */
static void test_open_async_synced_cancelled_ten_times(void) {
    char dir_a[4096], dir_b[4096], name[64], url[512];
    const char *auth = test_auth_url();
    snprintf(name, sizeof name, "c-async-%ld-%ld", (long)getpid(), (long)time(NULL));
    shoal_app_t *app_a = shoal_app_new(path_in(dir_a, "async-device-a"), "io.shoal.tests.c");
    shoal_app_t *app_b = shoal_app_new(path_in(dir_b, "async-device-b"), "io.shoal.tests.c");
    CHECK(app_a != NULL && app_b != NULL);
    shoal_credentials_t *reg = shoal_credentials_password(name, "myPassw0rd", true);
    shoal_credentials_t *creds = shoal_credentials_password(name, "myPassw0rd", false);
    shoal_user_t *ua = shoal_app_login(app_a, reg, auth);
    CHECK(ua != NULL);
    shoal_user_t *ub = shoal_app_login(app_b, creds, auth);
    CHECK(ub != NULL);
    sync_url(url, "/~/async-open");

    /* Device A puts 2000 items on the server: a download that takes longer than 4 ms. */
    shoal_sync_config_t *sca = shoal_sync_config_new(ua, url);
    CHECK(sca != NULL);
    shoal_config_t *ca = synced_config(sca);
    shoal_realm_t *ra = shoal_realm_open(ca);
    CHECK(ra != NULL);
    add_items(ra, 0, 2000);
    shoal_session_t *sa = shoal_realm_get_session(ra);
    CHECK(sa != NULL);
    CHECK(shoal_session_wait_for_upload(sa, WAIT_MS));

    shoal_sync_config_t *scb = shoal_sync_config_new(ub, url);
    CHECK(scb != NULL);
    CHECK(shoal_sync_config_set_wait_for_initial_data(scb, true, WAIT_MS));
    shoal_config_t *cb = synced_config(scb);
    char *path = shoal_config_get_path(cb);
    CHECK(path != NULL);
    static open_job_t never;
    open_job_init(&never);
    for (int i = 0; i < 10; i++) {
        CHECK(!file_exists(path));
        shoal_async_open_task_t *task = shoal_realm_open_async(cb, opened, &never, free_open_job);
        CHECK(task != NULL);
        sleep_ms(i % 5);
        bool cancelled = false;
        CHECK(shoal_async_open_task_cancel(task, &cancelled));
        CHECK(cancelled);
        CHECK(!file_exists(path));
        CHECK(shoal_release(task));
    }
    sleep_ms(500);
    pthread_mutex_lock(&never.mu);
    int calls = never.calls, freed = never.freed;
    pthread_mutex_unlock(&never.mu);
    CHECK_INT_EQ(calls, 0);
    CHECK_INT_EQ(freed, 10);
    CHECK(!file_exists(path));

    /* Not cancelled: the callback (on a library thread) gets the realm with every item. */
    static open_job_t ok;
    open_job_init(&ok);
    shoal_async_open_task_t *task = shoal_realm_open_async(cb, opened, &ok, free_open_job);
    CHECK(task != NULL);
    CHECK(wait_for_count(&ok.mu, &ok.cv, &ok.calls, 1));
    CHECK_INT_EQ(ok.error_code, NO_ERROR_CODE);
    CHECK(!ok.on_main);
    CHECK(ok.realm != NULL);
    CHECK_INT_EQ(count_objects(ok.realm, "Item"), 2000);
    CHECK(shoal_release(ok.realm));
    CHECK(shoal_release(task));

    shoal_free(path);
    CHECK(shoal_release(cb));
    CHECK(shoal_release(scb));
    CHECK(shoal_release(sa));
    CHECK(shoal_release(ra));
    CHECK(shoal_release(ca));
    CHECK(shoal_release(sca));
    CHECK(shoal_release(ua));
    CHECK(shoal_release(ub));
    CHECK(shoal_release(reg));
    CHECK(shoal_release(creds));
    CHECK(shoal_release(app_a));
    CHECK(shoal_release(app_b));
}

/* What an async lookup saw. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    bool on_main;
    bool found;
    char json[512];
    int32_t error_code;
    int freed;
} lookup_seen_t;

static void lookup_seen_init(lookup_seen_t *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->error_code = -12345;
}

static void looked_up(void *userdata, const char *json, const shoal_error_t *error) {
    lookup_seen_t *s = userdata;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->on_main = pthread_equal(pthread_self(), g_main_thread);
    s->found = json != NULL;
    snprintf(s->json, sizeof s->json, "%s", json ? json : "");
    s->error_code = error ? error->code : NO_ERROR_CODE;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void free_lookup_seen(void *userdata) {
    lookup_seen_t *s = userdata;
    pthread_mutex_lock(&s->mu);
    s->freed++;
    pthread_mutex_unlock(&s->mu);
}

static void test_user_lookup_async(void) {
    char dir[4096], name[64];
    const char *auth = test_auth_url();
    g_main_thread = pthread_self();
    snprintf(name, sizeof name, "c-lookup-%ld-%ld", (long)getpid(), (long)time(NULL));
    shoal_app_t *app = shoal_app_new(path_in(dir, "lookup-app"), "io.shoal.tests.c");
    CHECK(app != NULL);
    shoal_credentials_t *reg = shoal_credentials_password(name, "myPassw0rd", true);
    shoal_user_t *user = shoal_app_login(app, reg, auth);
    CHECK(user != NULL);
    char *identity = shoal_user_identity(user);
    CHECK(identity != NULL);
    shoal_credentials_t *dbg = shoal_credentials_debug("admin");
    shoal_user_t *admin = shoal_app_login(app, dbg, auth);
    CHECK(admin != NULL);
    static wakeups_t wake;
    shoal_scheduler_t *sched = new_app_scheduler(&wake);

    /* On the app's scheduler: found. */
    static lookup_seen_t found, missing, denied;
    lookup_seen_init(&found);
    CHECK(shoal_user_lookup_async(admin, "password", name, sched, looked_up, &found, free_lookup_seen));
    CHECK_INT_EQ(run_loop_once(sched, &wake), 1);
    CHECK_INT_EQ(found.calls, 1);
    CHECK(found.on_main);
    CHECK_INT_EQ(found.error_code, NO_ERROR_CODE);
    CHECK(found.found && strstr(found.json, identity) != NULL && strstr(found.json, "\"is_admin\":false") != NULL);
    CHECK_INT_EQ(found.freed, 1);

    /* On a library thread (NULL scheduler): no such user -> NULL and no error; a non-admin
     * asking -> ACCESS_DENIED. */
    lookup_seen_init(&missing);
    CHECK(shoal_user_lookup_async(admin, "password", "no-such-user-anywhere", NULL, looked_up, &missing,
                                  free_lookup_seen));
    CHECK(wait_for_count(&missing.mu, &missing.cv, &missing.calls, 1));
    CHECK(!missing.on_main);
    CHECK(!missing.found);
    CHECK_INT_EQ(missing.error_code, NO_ERROR_CODE);
    lookup_seen_init(&denied);
    CHECK(shoal_user_lookup_async(user, "password", name, NULL, looked_up, &denied, free_lookup_seen));
    CHECK(wait_for_count(&denied.mu, &denied.cv, &denied.calls, 1));
    CHECK(!denied.found);
    CHECK_INT_EQ(denied.error_code, SHOAL_ERR_ACCESS_DENIED);
    CHECK_ERR(!shoal_user_lookup_async(admin, "password", name, NULL, NULL, &denied, free_lookup_seen),
              SHOAL_ERR_INVALID_ARGUMENT);

    shoal_free(identity);
    CHECK(shoal_release(sched));
    CHECK(shoal_release(admin));
    CHECK(shoal_release(dbg));
    CHECK(shoal_release(user));
    CHECK(shoal_release(reg));
    CHECK(shoal_release(app));
}

int main(void) {
    make_temp_dir();
    printf("shoal %s (header %s), files in %s\n", shoal_libversion(), SHOAL_VERSION, g_dir);

    RUN_TEST(test_versions);
    RUN_TEST(test_value_constructors);
    RUN_TEST(test_error_names_and_last_error);
    RUN_TEST(test_schema_builder_and_json);
    RUN_TEST(test_config_setters);
    RUN_TEST(test_in_memory_realm);
    RUN_TEST(test_initial_data_runs_once_in_creating_transaction);
    RUN_TEST(test_migration_and_delete_if_needed);
    RUN_TEST(test_realm_transactions);
    RUN_TEST(test_two_handles_on_one_file);
    RUN_TEST(test_object_create_find_primary_keys);
    RUN_TEST(test_object_values_of_every_kind);
    RUN_TEST(test_property_keys_and_add_int);
    RUN_TEST(test_object_delete_and_dangling_links);
    RUN_TEST(test_lists);
    RUN_TEST(test_queries);
    RUN_TEST(test_results);
    RUN_TEST(test_change_callbacks_across_threads);
    RUN_TEST(test_fine_grained_notifications_on_the_app_thread);
    RUN_TEST(test_null_released_and_wrong_handles);
    RUN_TEST(test_bad_input);
    RUN_TEST(test_delete_realm_files);
    RUN_TEST(test_encryption_read_only_and_compaction);
    RUN_TEST(test_users_against_a_server);
    RUN_TEST(test_app_trusted_ca);
    RUN_TEST(test_sync_config_urls_and_paths);
    RUN_TEST(test_sync_two_apps_converge);
    RUN_TEST(test_sync_error_handler_and_token_binder);
    RUN_TEST(test_sync_session_handles_pause_and_client_reset);
    RUN_TEST(test_sync_client_reset_at_the_next_open_with_a_backup_config);
    RUN_TEST(test_write_async_completes_on_the_app_scheduler);
    RUN_TEST(test_open_async_local_and_cancelled);
    RUN_TEST(test_open_async_synced_cancelled_ten_times);
    RUN_TEST(test_user_lookup_async);
    RUN_TEST(test_sync_files_sessions_and_default_handler);

    remove_temp_dir();
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed == 0 ? 0 : 1;
}

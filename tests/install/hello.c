/*
 * hello.c: a C program as a user writes it against an installed Shoal (scripts/install.sh):
 *   cc hello.c $(pkg-config --cflags --libs shoal) -o hello && ./hello DIR
 * Opens a realm in DIR, writes, queries and reads back; prints "hello.c: ok" on success.
 * Run by scripts/check_install.sh.
 */
#include <shoal.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what) {
    shoal_error_t err;
    if (shoal_get_last_error(&err))
        fprintf(stderr, "hello.c: %s: %s: %s\n", what, shoal_error_name(err.code), err.message);
    else
        fprintf(stderr, "hello.c: %s\n", what);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    if (strcmp(shoal_libversion(), SHOAL_VERSION) != 0) {
        fprintf(stderr, "hello.c: header %s, library %s\n", SHOAL_VERSION, shoal_libversion());
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/people.realm", argv[1]);

    shoal_schema_t *schema = shoal_schema_from_json(
        "{\"classes\":[{\"name\":\"Person\",\"primary_key\":\"id\",\"properties\":["
        "{\"name\":\"id\",\"type\":\"int\"},{\"name\":\"name\",\"type\":\"string\"},"
        "{\"name\":\"age\",\"type\":\"int\"}]}]}");
    if (!schema) die("schema");
    shoal_config_t *config = shoal_config_new(path);
    if (!config || !shoal_config_set_schema(config, schema)) die("config");
    shoal_realm_t *realm = shoal_realm_open(config);
    if (!realm) die("open");

    if (!shoal_realm_begin_write(realm)) die("begin_write");
    const char *names[] = {"Ann", "Bob", "Cid"};
    for (int i = 0; i < 3; i++) {
        shoal_value_t id = shoal_value_int(i + 1), name = shoal_value_string(names[i]),
                      age = shoal_value_int(20 + 10 * i);
        shoal_object_t *person = shoal_object_create(realm, "Person", &id);
        if (!person || !shoal_object_set(person, "name", &name) || !shoal_object_set(person, "age", &age))
            die("create");
        shoal_release(person);
    }
    if (!shoal_realm_commit(realm)) die("commit");

    shoal_value_t min_age = shoal_value_int(25);
    shoal_results_t *adults = shoal_realm_query(realm, "Person", "age > $0 SORT(id ASC)", &min_age, 1);
    if (!adults || shoal_results_count(adults) != 2) die("query");
    shoal_object_t *first = shoal_results_get(adults, 0);
    shoal_value_t name;
    if (!first || !shoal_object_get(first, "name", &name)) die("read");
    int ok = name.kind == SHOAL_VALUE_STRING && name.data.string.size == 3 &&
             memcmp(name.data.string.data, "Bob", 3) == 0;
    shoal_value_free(&name);

    shoal_release(first);
    shoal_release(adults);
    shoal_release(realm);
    shoal_release(config);
    shoal_release(schema);
    if (!ok) {
        fprintf(stderr, "hello.c: the first adult is not Bob\n");
        return 1;
    }
    printf("hello.c: ok (Shoal %s)\n", shoal_libversion());
    return 0;
}

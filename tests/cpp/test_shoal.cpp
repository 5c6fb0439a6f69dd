/*
 * test_shoal.cpp: exercises the C++ binding (bindings/cpp/shoal.hpp) over the C ABI.
 *
 * Built and run by tests/cpp_abi.rs (`cargo test --test cpp_abi`), which also starts a
 * `shoal-server` and passes its auth URL in $SHOAL_TEST_AUTH_URL (the sync tests use
 * realm://HOST:PORT of the same server; without it they are skipped). By hand:
 *   cargo build && c++ -std=c++17 -Wall -Wextra -Werror -pedantic -I include -I bindings/cpp \
 *       tests/cpp/test_shoal.cpp target/debug/libshoal.a -lpthread -ldl -lm -o /tmp/test_shoal_cpp
 *   target/debug/shoal-server --data /tmp/srv --listen 127.0.0.1:0 --debug-provider &
 *   SHOAL_TEST_AUTH_URL=http://ADDR/auth /tmp/test_shoal_cpp
 *
 * Files go to a fresh directory under $SHOAL_TEST_TMPDIR, $TMPDIR or /tmp. A failed CHECK
 * throws, so every handle is released on the way out; the program is meant to be clean under
 * `valgrind --leak-check=full`. The last line is "N passed, M failed" (plus ", K skipped").
 */
#include "shoal.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using shoal::Value;

// ---------------------------------------------------------------------------------------------
// Checks

namespace {

struct CheckFailure {
    std::string message;
};

struct Skipped {
    std::string why;
};

int g_passed = 0;
int g_failed = 0;
int g_skipped = 0;

[[noreturn]] void fail(const char *file, int line, const std::string &what) {
    throw CheckFailure{std::string(file) + ":" + std::to_string(line) + ": " + what};
}

std::string show(const Value &v) {
    switch (v.kind()) {
    case Value::Kind::Null:
        return "null";
    case Value::Kind::Bool:
        return v.as_bool() ? "true" : "false";
    case Value::Kind::Int:
        return std::to_string(v.as_int());
    case Value::Kind::Float:
        return std::to_string(v.as_float()) + "f";
    case Value::Kind::Double:
        return std::to_string(v.as_double());
    case Value::Kind::String:
        return "\"" + v.as_string() + "\"";
    case Value::Kind::Binary:
        return "binary[" + std::to_string(v.as_binary().size()) + "]";
    case Value::Kind::Timestamp:
        return "ts(" + std::to_string(v.as_timestamp().seconds) + "," + std::to_string(v.as_timestamp().nanos) + ")";
    case Value::Kind::Link:
        return "link(" + v.as_link().class_name + "," + std::to_string(v.as_link().key) + ")";
    }
    return "?";
}

template <typename T>
std::string show(const T &v) {
    if constexpr (std::is_enum_v<T>) {
        return std::to_string(static_cast<long long>(v));
    } else if constexpr (std::is_arithmetic_v<T>) {
        return std::to_string(v);
    } else if constexpr (std::is_convertible_v<const T &, std::string>) {
        return "\"" + std::string(v) + "\"";
    } else {
        return "(value)";
    }
}

}  // namespace

#define CHECK(cond)                                                 \
    do {                                                            \
        if (!(cond)) fail(__FILE__, __LINE__, "CHECK(" #cond ")");  \
    } while (0)

#define CHECK_EQ(a, b)                                                                                  \
    do {                                                                                                \
        const auto &check_a_ = (a);                                                                     \
        const auto &check_b_ = (b);                                                                     \
        if (!(check_a_ == check_b_))                                                                    \
            fail(__FILE__, __LINE__, #a " == " #b " (" + show(check_a_) + " != " + show(check_b_) + ")"); \
    } while (0)

namespace {

/// Runs `f`, which must throw shoal::Error with `code`, a message, a category and a name.
template <typename F>
shoal::Error expect_error(const char *file, int line, const char *expr, int32_t code, const char *code_name, F &&f) {
    try {
        f();
    } catch (const shoal::Error &e) {
        if (e.code() != code)
            fail(file, line,
                 std::string(expr) + ": expected " + code_name + ", got " + e.name() + " (" + e.what() + ")");
        if (e.message().empty()) fail(file, line, std::string(expr) + ": the error has no message");
        if (e.category() == SHOAL_ERR_CATEGORY_NONE) fail(file, line, std::string(expr) + ": category NONE");
        if (std::string(e.what()).find(e.name()) == std::string::npos)
            fail(file, line, std::string(expr) + ": what() does not name the error");
        return e;
    } catch (const std::exception &e) {
        fail(file, line, std::string(expr) + ": expected shoal::Error " + code_name + ", got " + e.what());
    }
    fail(file, line, std::string(expr) + ": expected shoal::Error " + code_name + ", but nothing was thrown");
}

}  // namespace

/* CHECK_ERROR(code, expression): evaluating the expression throws shoal::Error with this code;
 * returns the error. */
#define CHECK_ERROR(code, ...) \
    expect_error(__FILE__, __LINE__, #__VA_ARGS__, (code), #code, [&]() { (void)(__VA_ARGS__); })

#define RUN_TEST(fn) run_test(#fn, fn)

namespace {

void run_test(const char *name, void (*fn)()) {
    std::printf("test %-44s ", name);
    std::fflush(stdout);
    std::string failure;
    try {
        fn();
        g_passed++;
        std::printf("ok\n");
        std::fflush(stdout);
        return;
    } catch (const Skipped &s) {
        g_skipped++;
        std::printf("skipped (%s)\n", s.why.c_str());
        std::fflush(stdout);
        return;
    } catch (const CheckFailure &f) {
        failure = f.message;
    } catch (const shoal::Error &e) {
        failure = std::string("unexpected shoal::Error ") + e.what();
    } catch (const std::exception &e) {
        failure = std::string("unexpected exception: ") + e.what();
    } catch (...) {
        failure = "unexpected exception";
    }
    g_failed++;
    std::printf("FAILED\n    %s\n", failure.c_str());
    std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------------
// Files and helpers

std::string g_dir;

void make_temp_dir() {
    const char *base = std::getenv("SHOAL_TEST_TMPDIR");
    if (!base || !*base) base = std::getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    std::string templ = std::string(base) + "/shoal-cpp-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) {
        std::perror("mkdtemp");
        std::exit(2);
    }
    g_dir = buf.data();
}

std::string path_in(const std::string &name) { return g_dir + "/" + name; }

std::string unique_name(const char *prefix) {
    return std::string(prefix) + "-" + std::to_string(static_cast<long>(getpid())) + "-" +
           std::to_string(static_cast<long>(std::time(nullptr)));
}

bool file_contains(const std::string &path, const std::string &needle) {
    std::ifstream in(path, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return data.find(needle) != std::string::npos;
}

constexpr auto kWait = 20s;

/// Polls `pred` until it holds or kWait passes.
template <typename P>
bool eventually(P pred) {
    auto deadline = std::chrono::steady_clock::now() + kWait;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return pred();
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

/// State shared with callbacks (held by std::shared_ptr: the library may delete a callback
/// after its token is gone, on its own thread).
struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    template <typename F>
    void update(F f) {
        {
            std::lock_guard<std::mutex> lock(mu);
            f();
        }
        cv.notify_all();
    }
    template <typename P>
    bool wait(P pred) {
        std::unique_lock<std::mutex> lock(mu);
        return cv.wait_for(lock, kWait, pred);
    }
};

/*
 * Person {id: int pk, name: string? indexed, nick: string, age: int indexed, score: double,
 *         ratio: float, active: bool, born: timestamp?, photo: binary?, dog: Dog?, dogs: [Dog],
 *         tags: [string], counter: int}
 * Dog    {name: string, age: int}
 * Tag    {code: string pk, label: string?}
 */
shoal::Schema people_schema() {
    using shoal::PropertyType;
    namespace prop = shoal::property;
    auto s = shoal::Schema::create();
    s.add_class("Person", "id")
        .add_property("Person", "id", PropertyType::Int)
        .add_property("Person", "name", PropertyType::String, prop::nullable | prop::indexed)
        .add_property("Person", "nick", PropertyType::String)
        .add_property("Person", "age", PropertyType::Int, prop::indexed)
        .add_property("Person", "score", PropertyType::Double)
        .add_property("Person", "ratio", PropertyType::Float)
        .add_property("Person", "active", PropertyType::Bool)
        .add_property("Person", "born", PropertyType::Timestamp, prop::nullable)
        .add_property("Person", "photo", PropertyType::Binary, prop::nullable)
        .add_property("Person", "dog", PropertyType::Link, prop::nullable, "Dog")
        .add_property("Person", "dogs", PropertyType::Link, prop::list, "Dog")
        .add_property("Person", "tags", PropertyType::String, prop::list)
        .add_property("Person", "counter", PropertyType::Int);
    s.add_class("Dog")
        .add_property("Dog", "name", PropertyType::String)
        .add_property("Dog", "age", PropertyType::Int);
    s.add_class("Tag", "code")
        .add_property("Tag", "code", PropertyType::String)
        .add_property("Tag", "label", PropertyType::String, prop::nullable);
    return s;
}

shoal::Config people_config(const std::string &name) {
    auto c = shoal::Config::create(path_in(name));
    c.set_schema(people_schema());
    return c;
}

shoal::Realm open_people(const std::string &name) { return shoal::Realm::open(people_config(name)); }

/// The "id" of every result, in order, as "1,2,3".
std::string ids(const shoal::Results &res) {
    std::string out;
    for (size_t i = 0; i < res.count(); i++) {
        if (i) out += ",";
        out += std::to_string(res.get(i).get("id").as_int());
    }
    return out;
}

/// Five people: ids 1..5.
shoal::Realm open_fixture(const std::string &name) {
    shoal::Realm r = open_people(name);
    struct P {
        int64_t id;
        const char *name;
        int64_t age;
        double score;
        float ratio;
        bool active;
        int64_t born;
    };
    const P people[] = {{1, "Ann", 30, 1.5, 0.5f, true, 3000},   {2, "bob", 20, 2.25, 1.0f, false, 2000},
                        {3, "Cid", 40, -3.25, 2.5f, true, 5000}, {4, "Dee", 18, 4.0, 1.5f, false, 1000},
                        {5, "Eve", 37, 5.25, 2.0f, true, 4000}};
    r.write([&] {
        for (const P &p : people) {
            r.create_object("Person", p.id)
                .set("name", p.name)
                .set("age", p.age)
                .set("score", p.score)
                .set("ratio", p.ratio)
                .set("active", p.active)
                .set("born", shoal::Timestamp{p.born, 0});
        }
    });
    return r;
}

// ---------------------------------------------------------------------------------------------
// Local realms

void test_version_and_error_type() {
    CHECK_EQ(shoal::version(), std::string(SHOAL_VERSION));
    auto s = shoal::Schema::create();
    shoal::Error e = CHECK_ERROR(SHOAL_ERR_NO_SUCH_CLASS, s.add_property("Nope", "x", shoal::PropertyType::Int));
    CHECK_EQ(e.category(), SHOAL_ERR_CATEGORY_LOGIC);
    CHECK_EQ(std::string(e.name()), std::string("NO_SUCH_CLASS"));
    CHECK(std::string(e.what()).find(e.message()) != std::string::npos);
    CHECK(e.path().empty());
    // shoal::Error is a std::runtime_error, copies cheaply, and keeps its data.
    shoal::Error copy = e;
    CHECK_EQ(copy.code(), e.code());
    CHECK_EQ(copy.message(), e.message());
    try {
        throw copy;
    } catch (const std::runtime_error &re) {
        CHECK_EQ(std::string(re.what()), std::string(e.what()));
    }
    // A file error names its file.
    auto missing = shoal::Config::create(path_in("does-not-exist/x.realm"));
    missing.set_read_only(true);
    shoal::Error fe = CHECK_ERROR(SHOAL_ERR_FILE_NOT_FOUND, shoal::Realm::open(missing));
    CHECK_EQ(fe.category(), SHOAL_ERR_CATEGORY_FILE);
}

void test_schema_and_config() {
    auto s = people_schema();
    std::string json = s.to_json();
    CHECK(json.find("\"Person\"") != std::string::npos);
    auto again = shoal::Schema::from_json(json);
    CHECK_EQ(again.to_json(), json);
    CHECK_ERROR(SHOAL_ERR_JSON, shoal::Schema::from_json("{"));
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, s.add_class("Person"));
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, shoal::Config::create(""));

    auto c = shoal::Config::create(path_in("config.realm"));
    CHECK_EQ(c.path(), path_in("config.realm"));
    c.set_schema(s).set_schema_version(3).set_read_only(false).set_in_memory(false);
    {
        shoal::Realm r = shoal::Realm::open(c);
        CHECK_EQ(r.schema_version(), 3u);
        CHECK(r.is_empty());
        CHECK(r.schema_json().find("\"Dog\"") != std::string::npos);
    }
    // A lower schema version than the file's is an error.
    c.set_schema_version(2);
    CHECK_ERROR(SHOAL_ERR_SCHEMA_VERSION_LOWER, shoal::Realm::open(c));
    // In memory: nothing on disk.
    auto mem = shoal::Config::create(path_in("memory.realm"));
    mem.set_schema(s).set_in_memory(true);
    {
        shoal::Realm r = shoal::Realm::open(mem);
        r.write([&] { r.create_object("Dog").set("name", "Rex"); });
        CHECK_EQ(r.objects("Dog").count(), 1u);
    }
    CHECK(!std::filesystem::exists(path_in("memory.realm")));
    // Deleting files: refused while open, fine after.
    {
        shoal::Realm r = shoal::Realm::open(c.set_schema_version(3));
        CHECK_ERROR(SHOAL_ERR_REALM_IN_USE, shoal::Realm::delete_files(c));
    }
    shoal::Realm::delete_files(c);
    CHECK(!std::filesystem::exists(path_in("config.realm")));
}

void test_objects_and_values() {
    shoal::Realm r = open_people("values.realm");
    const std::string utf8 = "Zo\xc3\xab \xf0\x9f\x90\x9f \xe6\x97\xa5\xe6\x9c\xac";
    const std::string with_nul("a\0b", 3);
    const shoal::Binary bytes = {0x01, 0x00, 0xff, 0x00, 0x7f};
    uint64_t dog_key = r.write([&] {
        shoal::Object p = r.create_object("Person", 1);
        shoal::Object dog = r.create_object("Dog");
        dog.set("name", "Rex");
        // Defaults.
        CHECK_EQ(p.get("age"), Value(0));
        CHECK_EQ(p.get("nick"), Value(""));
        CHECK(p.get("name").is_null());
        CHECK(p.get("dog").is_null());
        CHECK(!p.linked("dog").has_value());
        // Every kind.
        p.set("active", true)
            .set("age", INT64_MIN)
            .set("ratio", 1.25f)
            .set("score", -3.141592653589793)
            .set("name", utf8)
            .set("nick", with_nul)
            .set("photo", bytes)
            .set("born", shoal::Timestamp{1700000000, 123456789})
            .set("dog", dog.as_link());
        CHECK_EQ(p.get("active"), Value(true));
        CHECK_EQ(p.get("age").as_int(), INT64_MIN);
        CHECK_EQ(p.get("ratio"), Value(1.25f));
        CHECK_EQ(p.get("ratio").kind(), Value::Kind::Float);
        CHECK_EQ(p.get("score").as_double(), -3.141592653589793);
        CHECK_EQ(p.get("name").as_string(), utf8);
        CHECK_EQ(p.get("nick").as_string().size(), 3u);
        CHECK_EQ(p.get("nick"), Value(with_nul));
        CHECK(p.get("photo").as_binary() == bytes);
        CHECK(p.get("born").as_timestamp() == (shoal::Timestamp{1700000000, 123456789}));
        CHECK_EQ(p.get("dog").as_link().class_name, std::string("Dog"));
        CHECK_EQ(p.get("dog").as_link().key, dog.key());
        CHECK_EQ(dog.class_name(), std::string("Dog"));
        std::optional<shoal::Object> linked = p.linked("dog");
        CHECK(linked.has_value());
        CHECK_EQ(linked->get("name"), Value("Rex"));
        // An empty binary is not null; null is allowed where nullable.
        p.set("photo", shoal::Binary{});
        CHECK_EQ(p.get("photo").kind(), Value::Kind::Binary);
        p.set("photo", nullptr);
        CHECK(p.get("photo").is_null());
        p.set("photo", bytes);
        // add_int
        p.set("counter", 40).add_int("counter", 2);
        CHECK_EQ(p.get("counter").as_int(), 42);
        return dog.key();
    });

    // Read back through a second handle.
    shoal::Realm r2 = open_people("values.realm");
    std::optional<shoal::Object> p = r2.find_object("Person", 1);
    CHECK(p.has_value());
    CHECK_EQ(p->get("name").as_string(), utf8);
    CHECK(p->get("photo").as_binary() == bytes);
    CHECK_EQ(p->get("age").as_int(), INT64_MIN);
    Value link = p->get("dog");
    CHECK_EQ(link.as_link().key, dog_key);
    std::optional<shoal::Object> dog = r2.object_from_link(link);
    CHECK(dog.has_value());
    CHECK_EQ(dog->get("name"), Value("Rex"));
    CHECK(!r2.object_from_link(Value()).has_value());
    // Not found is std::nullopt, not an error.
    CHECK(!r2.find_object("Person", 99).has_value());
    // Strings as primary keys.
    r.write([&] { r.create_object("Tag", "red").set("label", "Red"); });
    r2.refresh();
    CHECK_EQ(r2.find_object("Tag", "red")->get("label"), Value("Red"));

    // Delete: the handle stays, reports OBJECT_DELETED; the link becomes null.
    shoal::Object gone = *r2.find_object("Person", 1);
    std::optional<shoal::Object> dog_in_r = r.object_from_link(link);
    r.write([&] { dog_in_r->remove(); });
    CHECK(!dog_in_r->is_valid());
    CHECK_ERROR(SHOAL_ERR_OBJECT_DELETED, dog_in_r->get("name"));
    r2.refresh();
    CHECK(gone.is_valid());
    CHECK(gone.get("dog").is_null());
    r2.write([&] { gone.remove(); });
    CHECK(!gone.is_valid());
    CHECK(!r2.find_object("Person", 1).has_value());
}

void test_errors_become_exceptions() {
    shoal::Realm r = open_people("errors.realm");
    CHECK_ERROR(SHOAL_ERR_NOT_IN_WRITE_TRANSACTION, r.create_object("Person", 1));
    r.begin_write();
    CHECK(r.is_in_transaction());
    CHECK_ERROR(SHOAL_ERR_ALREADY_IN_WRITE_TRANSACTION, r.begin_write());
    shoal::Object p = r.create_object("Person", 1);
    CHECK_ERROR(SHOAL_ERR_NO_SUCH_CLASS, r.create_object("Nope"));
    CHECK_ERROR(SHOAL_ERR_DUPLICATE_PRIMARY_KEY, r.create_object("Person", 1));
    CHECK_ERROR(SHOAL_ERR_WRONG_TYPE, r.create_object("Person", "one"));
    CHECK_ERROR(SHOAL_ERR_WRONG_TYPE, p.set("age", "forty"));
    CHECK_ERROR(SHOAL_ERR_WRONG_TYPE, p.set("active", 1.5));
    CHECK_ERROR(SHOAL_ERR_WRONG_TYPE, p.set("nick", nullptr));
    CHECK_ERROR(SHOAL_ERR_WRONG_TYPE, p.get("tags"));
    CHECK_ERROR(SHOAL_ERR_WRONG_TYPE, p.list("name"));
    CHECK_ERROR(SHOAL_ERR_NO_SUCH_PROPERTY, p.set("nope", 1));
    CHECK_ERROR(SHOAL_ERR_NO_SUCH_PROPERTY, p.get("nope"));
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, p.set("id", 2));
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, p.set("name", std::string("caf\xc3")));
    CHECK_ERROR(SHOAL_ERR_NO_SUCH_CLASS, p.set("dog", shoal::Link{"Nope", 0}));
    r.commit();
    CHECK(!r.is_in_transaction());
    CHECK_ERROR(SHOAL_ERR_NOT_IN_WRITE_TRANSACTION, r.commit());
    CHECK_ERROR(SHOAL_ERR_NOT_IN_WRITE_TRANSACTION, r.cancel_write());
    CHECK_ERROR(SHOAL_ERR_NOT_IN_WRITE_TRANSACTION, p.set("age", 1));
    CHECK_ERROR(SHOAL_ERR_NO_SUCH_CLASS, r.objects("Nope"));
    CHECK_ERROR(SHOAL_ERR_NO_SUCH_CLASS, r.find_object("Nope", 1));
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, r.find_object("Dog", 1));  // no primary key
    CHECK_ERROR(SHOAL_ERR_INVALID_QUERY, r.query("Person", "age >"));
    CHECK_ERROR(SHOAL_ERR_INVALID_QUERY, r.query("Person", "age > $0"));  // missing argument
    CHECK_ERROR(SHOAL_ERR_INDEX_OUT_OF_BOUNDS, r.objects("Person").get(1));
    // Value accessors of the wrong type throw the same kind of error.
    shoal::Error e = CHECK_ERROR(SHOAL_ERR_WRONG_TYPE, Value("x").as_int());
    CHECK(e.message().find("STRING") != std::string::npos);
    CHECK_ERROR(SHOAL_ERR_WRONG_TYPE, Value().as_string());
    // A closed realm.
    shoal::Realm closed = open_people("errors.realm");
    closed.close();
    CHECK(closed.is_closed());
    CHECK_ERROR(SHOAL_ERR_REALM_CLOSED, closed.begin_write());
    CHECK_ERROR(SHOAL_ERR_REALM_CLOSED, closed.objects("Person"));
    CHECK(!r.is_closed());
}

void test_moved_from_and_released_handles() {
    shoal::Realm r = open_people("moved.realm");
    shoal::Realm r2 = std::move(r);
    CHECK(!r);
    CHECK(r2);
    shoal::Error e = CHECK_ERROR(SHOAL_ERR_MISUSE, r.begin_write());
    CHECK(e.message().find("shoal::Realm") != std::string::npos);
    CHECK(e.message().find("empty") != std::string::npos);
    CHECK_EQ(e.category(), SHOAL_ERR_CATEGORY_LOGIC);
    CHECK_ERROR(SHOAL_ERR_MISUSE, r.clone());
    CHECK_ERROR(SHOAL_ERR_MISUSE, r.objects("Person"));
    CHECK_ERROR(SHOAL_ERR_MISUSE, r.add_change_callback([](uint64_t) {}));
    CHECK_ERROR(SHOAL_ERR_MISUSE, shoal::Realm::open(shoal::Config()));
    shoal::Object none;
    CHECK_ERROR(SHOAL_ERR_MISUSE, none.get("id"));
    CHECK_ERROR(SHOAL_ERR_MISUSE, shoal::Results().count());
    CHECK_ERROR(SHOAL_ERR_MISUSE, shoal::List().size());
    CHECK_ERROR(SHOAL_ERR_MISUSE, shoal::Session().state());
    CHECK_ERROR(SHOAL_ERR_MISUSE, shoal::Config::create("x.realm").set_schema(shoal::Schema()));
    CHECK_ERROR(SHOAL_ERR_MISUSE, shoal::SyncConfig::create(shoal::User(), "realm://127.0.0.1:1/~/x"));

    // Moving into a handle releases what it held; the moved handle works.
    shoal::Realm other = open_people("moved-other.realm");
    other = std::move(r2);
    CHECK(!r2);
    other.write([&] { other.create_object("Person", 1); });

    // Clones are independent references to the same realm.
    shoal::Realm c = other.clone();
    other.reset();
    CHECK(!other);
    CHECK_EQ(c.objects("Person").count(), 1u);
    shoal::Results res = c.objects("Person");
    shoal::Results res2 = res.clone();
    res = shoal::Results();
    CHECK_EQ(res2.count(), 1u);

    // A reference released behind the wrapper's back: the library reports MISUSE, no crash.
    shoal::Realm extra = c.clone();
    shoal_realm_t *raw = extra.get();
    extra.reset();
    shoal::Realm dangling(raw);
    CHECK_ERROR(SHOAL_ERR_MISUSE, dangling.begin_write());
    CHECK(dangling.detach() == raw);  // never released twice
    CHECK(!c.is_in_transaction());    // the other reference is unaffected
}

void test_write_commits_or_rolls_back() {
    shoal::Realm r = open_people("write.realm");
    // Commits, and returns what the function returns.
    int64_t id = r.write([&] { return r.create_object("Person", 1).get("id").as_int(); });
    CHECK_EQ(id, 1);
    r.write([](shoal::Realm &realm) { realm.create_object("Person", 2); });
    CHECK(!r.is_in_transaction());
    shoal::Realm reader = open_people("write.realm");
    CHECK_EQ(reader.objects("Person").count(), 2u);

    // Any exception cancels the transaction and propagates.
    bool caught = false;
    try {
        r.write([&] {
            r.create_object("Person", 3);
            r.create_object("Person", 4);
            throw std::runtime_error("boom");
        });
    } catch (const std::runtime_error &e) {
        caught = std::string(e.what()) == "boom";
    }
    CHECK(caught);
    CHECK(!r.is_in_transaction());
    CHECK_EQ(r.objects("Person").count(), 2u);
    CHECK(!r.find_object("Person", 3).has_value());

    // ...including a shoal::Error from inside.
    CHECK_ERROR(SHOAL_ERR_DUPLICATE_PRIMARY_KEY, r.write([&] {
        r.create_object("Person", 5);
        r.create_object("Person", 1);
    }));
    CHECK(!r.is_in_transaction());
    CHECK(!r.find_object("Person", 5).has_value());
    CHECK(!reader.refresh());  // nothing was committed
    CHECK_EQ(reader.objects("Person").count(), 2u);

    // The realm is usable afterwards; a read-only realm refuses to begin.
    r.write([&] { r.create_object("Person", 6); });
    CHECK_EQ(r.objects("Person").count(), 3u);
    r = shoal::Realm();
    reader = shoal::Realm();
    auto ro = people_config("write.realm");
    ro.set_read_only(true);
    shoal::Realm readonly = shoal::Realm::open(ro);
    CHECK_ERROR(SHOAL_ERR_READ_ONLY, readonly.write([] {}));
    CHECK(!readonly.is_in_transaction());
}

void test_queries_and_aggregates() {
    shoal::Realm r = open_fixture("query.realm");
    shoal::Results all = r.objects("Person");
    CHECK_EQ(all.count(), 5u);
    CHECK_EQ(ids(r.query("Person", "age > $0 SORT(id ASC)", {25})), std::string("1,3,5"));
    CHECK_EQ(ids(r.query("Person", "name BEGINSWITH[c] $0", {"B"})), std::string("2"));
    CHECK_EQ(ids(r.query("Person", "active == $0 AND age < $1", {true, 35})), std::string("1"));
    CHECK_EQ(ids(r.query("Person", "score < $0", {0.0})), std::string("3"));
    CHECK_EQ(ids(r.query("Person", "born > $0 SORT(born DESC)", {shoal::Timestamp{2500, 0}})),
             std::string("3,5,1"));
    CHECK_EQ(ids(r.query("Person", "name == $0", {nullptr})), std::string(""));
    CHECK_EQ(ids(all.sort("age")), std::string("4,2,1,5,3"));
    CHECK_EQ(ids(all.sort("age", false)), std::string("3,5,1,2,4"));
    CHECK_EQ(ids(all.sort_by({{"active", false}, {"age", true}})), std::string("1,5,3,4,2"));
    CHECK_EQ(all.distinct("active").count(), 2u);
    CHECK_ERROR(SHOAL_ERR_NO_SUCH_PROPERTY, all.sort("nope"));

    CHECK_EQ(all.sum("age"), Value(145));
    CHECK_EQ(all.min("age"), Value(18));
    CHECK_EQ(all.max("age"), Value(40));
    CHECK_EQ(all.average("age"), Value(29.0));
    CHECK_EQ(all.sum("score"), Value(9.75));
    CHECK_EQ(all.max("ratio"), Value(2.5f));
    CHECK(all.min("born") == Value(shoal::Timestamp{1000, 0}));
    CHECK_EQ(r.query("Person", "active == true").sum("age"), Value(107));
    CHECK_ERROR(SHOAL_ERR_WRONG_TYPE, all.min("name"));
    CHECK_ERROR(SHOAL_ERR_NO_SUCH_PROPERTY, all.max("nope"));
    shoal::Results none = r.query("Person", "age > 1000");
    CHECK_EQ(none.count(), 0u);
    CHECK(none.min("age").is_null());
    CHECK(none.average("age").is_null());
    CHECK_EQ(none.sum("age"), Value(0));

    // Results are live; delete_all.
    r.write([&] { r.create_object("Person", 6).set("age", 99); });
    CHECK_EQ(all.count(), 6u);
    size_t deleted = r.write([&] { return r.query("Person", "age < $0", {21}).delete_all(); });
    CHECK_EQ(deleted, 2u);
    CHECK_EQ(all.count(), 4u);
    CHECK_EQ(ids(all.sort("id")), std::string("1,3,5,6"));
}

void test_iteration_and_string_arguments() {
    shoal::Realm r = open_fixture("iterate.realm");
    shoal::Results by_age = r.objects("Person").sort("age");

    // Range-for binds references to the objects, in order.
    std::vector<int64_t> seen;
    for (auto &person : by_age) seen.push_back(person.get("id").as_int());
    CHECK(seen == (std::vector<int64_t>{4, 2, 1, 5, 3}));
    int64_t total = 0;
    for (const shoal::Object &person : by_age) total += person.get("age").as_int();
    CHECK_EQ(total, int64_t{145});
    // A standard algorithm over the same iterators.
    CHECK_EQ(std::count_if(by_age.begin(), by_age.end(), [](const shoal::Object &p) { return p.get("active").as_bool(); }),
             std::ptrdiff_t{3});
    // Moving an object out of the loop keeps it.
    std::vector<shoal::Object> kept;
    for (auto &person : by_age)
        if (person.get("age").as_int() > 35) kept.push_back(std::move(person));
    CHECK_EQ(kept.size(), 2u);
    CHECK_EQ(kept[1].get("id"), Value(3));
    shoal::Results none = r.query("Person", "age > 1000");
    CHECK(none.begin() == none.end());
    CHECK(!none.first().has_value());
    CHECK_EQ(by_age.first()->get("id"), Value(4));

    // to_vector() is a fixed set: deleting while looping over it visits every object.
    size_t deleted = r.write([&] {
        size_t n = 0;
        for (auto &person : r.query("Person", "active == true").to_vector()) {
            person.remove();
            n++;
        }
        return n;
    });
    CHECK_EQ(deleted, 3u);
    CHECK_EQ(r.objects("Person").count(), 2u);

    // Lists iterate over their values.
    r.write([&] {
        shoal::List tags = r.find_object("Person", 2)->list("tags");
        for (const char *tag : {"x", "y", "z"}) tags.push_back(tag);
    });
    shoal::List tags = r.find_object("Person", 2)->list("tags");
    std::string joined;
    for (const auto &tag : tags) joined += tag.as_string();
    CHECK_EQ(joined, std::string("xyz"));
    CHECK(std::vector<Value>(tags.begin(), tags.end()) == tags.to_vector());

    // String arguments: C strings, std::string, std::string_view (not NUL-terminated: a
    // slice of a longer string) and std::filesystem::path.
    const std::string text = "name age";
    std::string_view name_view(text.data(), 4);
    std::string_view age_view(text.data() + 5, 3);
    CHECK_EQ(r.find_object("Person", 2)->get(name_view), Value("bob"));
    CHECK_EQ(r.objects(std::string_view("Person")).max(age_view), Value(20));
    CHECK_EQ(ids(r.query("Person", std::string_view("age == $0 trailing", 9), {18})), std::string("4"));
    shoal::Schema schema = shoal::Schema::create();
    schema.add_class(std::string_view("Thing"), std::string_view("code"))
        .add_property("Thing", std::string("code"), shoal::PropertyType::String)
        .add_property("Thing", "parent", shoal::PropertyType::Link, shoal::property::nullable,
                      std::string_view("Thing"));
    CHECK(schema.to_json().find("\"Thing\"") != std::string::npos);
    CHECK_ERROR(SHOAL_ERR_NO_SUCH_CLASS, schema.add_property(std::string_view("Nope"), "x", shoal::PropertyType::Int));
    std::filesystem::path path = std::filesystem::path(g_dir) / "by-path.realm";
    CHECK_EQ(shoal::Config::create(path).path(), path.string());
}

void test_lists() {
    shoal::Realm r = open_people("lists.realm");
    r.write([&] {
        shoal::Object p = r.create_object("Person", 1);
        shoal::List tags = p.list("tags");
        CHECK_EQ(tags.size(), 0u);
        tags.push_back("b").insert(0, "a").push_back("c");
        CHECK(tags.to_vector() == (std::vector<Value>{"a", "b", "c"}));
        tags.set(1, "B").move(0, 2);
        CHECK(tags.to_vector() == (std::vector<Value>{"B", "c", "a"}));
        tags.erase(1);
        CHECK_EQ(tags.size(), 2u);
        CHECK_EQ(tags[0], Value("B"));
        CHECK_EQ(tags.get(1), Value("a"));
        CHECK_ERROR(SHOAL_ERR_INDEX_OUT_OF_BOUNDS, tags.get(2));
        CHECK_ERROR(SHOAL_ERR_INDEX_OUT_OF_BOUNDS, tags.insert(3, "x"));
        CHECK_ERROR(SHOAL_ERR_WRONG_TYPE, tags.push_back(1));
        CHECK_ERROR(SHOAL_ERR_NO_SUCH_PROPERTY, p.list("nope"));

        shoal::List dogs = p.list("dogs");
        for (const char *name : {"Rex", "Fido"}) {
            shoal::Object d = r.create_object("Dog");
            d.set("name", name);
            dogs.push_back(d.as_link());
        }
        CHECK_EQ(dogs.size(), 2u);
        CHECK_EQ(dogs.get(1).kind(), Value::Kind::Link);
        CHECK_EQ(r.object_from_link(dogs.get(1))->get("name"), Value("Fido"));
    });
    shoal::Object p = *r.find_object("Person", 1);
    CHECK_EQ(p.list("tags").size(), 2u);
    CHECK_EQ(ids(r.query("Person", "dogs.@count == 2")), std::string("1"));
    CHECK_ERROR(SHOAL_ERR_NOT_IN_WRITE_TRANSACTION, p.list("tags").clear());
    r.write([&] { p.list("tags").clear(); });
    CHECK_EQ(p.list("tags").size(), 0u);
}

void test_encryption() {
    const std::string path = path_in("secret.realm");
    std::vector<uint8_t> key(64), other(64);
    for (size_t i = 0; i < 64; i++) {
        key[i] = static_cast<uint8_t>(i);
        other[i] = static_cast<uint8_t>(i + 1);
    }
    auto c = people_config("secret.realm");
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, c.set_encryption_key(std::vector<uint8_t>(32)));
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, c.set_encryption_key(std::vector<uint8_t>()));
    c.set_encryption_key(key);
    {
        shoal::Realm r = shoal::Realm::open(c);
        r.write([&] { r.create_object("Person", 7).set("name", "zebra-marker"); });
    }
    CHECK(!file_contains(path, "zebra-marker"));
    {
        shoal::Realm r = shoal::Realm::open(c);
        CHECK_EQ(r.find_object("Person", 7)->get("name"), Value("zebra-marker"));
    }
    auto wrong = people_config("secret.realm");
    wrong.set_encryption_key(other.data(), other.size());
    shoal::Error e = CHECK_ERROR(SHOAL_ERR_DECRYPTION_FAILED, shoal::Realm::open(wrong));
    CHECK_EQ(e.category(), SHOAL_ERR_CATEGORY_FILE);
    auto none = people_config("secret.realm");
    none.set_encryption_key(key).clear_encryption_key();
    CHECK_ERROR(SHOAL_ERR_DECRYPTION_FAILED, shoal::Realm::open(none));
    // Recovery configurations take the key too (read-only).
    shoal::Realm rec = shoal::Realm::open(shoal::Config::for_recovery(path, key));
    CHECK_EQ(rec.objects("Person").count(), 1u);
    CHECK_ERROR(SHOAL_ERR_READ_ONLY, rec.begin_write());
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, shoal::Config::for_recovery(path, std::vector<uint8_t>(10)));
}

void test_change_callback() {
    const std::string name = "notify.realm";
    shoal::Realm r = open_people(name);
    struct Seen : Shared {
        int calls = 0;
        uint64_t last = 0;
        std::thread::id thread;
    };
    auto seen = std::make_shared<Seen>();
    auto alive = std::make_shared<int>(0);
    std::weak_ptr<int> watch = alive;
    shoal::Token token = r.add_change_callback([seen, alive](uint64_t version) {
        seen->update([&] {
            seen->calls++;
            seen->last = std::max(seen->last, version);
            seen->thread = std::this_thread::get_id();
        });
    });
    alive.reset();
    CHECK(token);

    // A callback that throws: reported on stderr, the library goes on calling it.
    auto throws = std::make_shared<std::atomic<int>>(0);
    shoal::Token bad = r.add_change_callback([throws](uint64_t) {
        throws->fetch_add(1);
        throw std::runtime_error("expected test exception from a change callback");
    });

    // A commit on another thread through its own realm handle fires it.
    uint64_t v1 = 0;
    std::thread writer([&] {
        shoal::Realm w = open_people(name);
        w.write([&] { w.create_object("Person", 1); });
        v1 = w.version();
    });
    writer.join();
    CHECK(v1 > 0);
    CHECK(seen->wait([&] { return seen->last >= v1; }));
    // So does one on this thread (the callback runs on a library thread).
    r.write([&] { r.create_object("Person", 2); });
    uint64_t v2 = r.version();
    CHECK(v2 > v1);
    CHECK(seen->wait([&] { return seen->last >= v2; }));
    CHECK(seen->thread != std::this_thread::get_id());
    CHECK(eventually([&] { return throws->load() >= 2; }));

    // Releasing the token unregisters; the std::function is destroyed afterwards.
    CHECK(!watch.expired());
    token.unregister();
    CHECK(!token);
    CHECK(eventually([&] { return watch.expired(); }));
    int calls = 0;
    seen->update([&] { calls = seen->calls; });
    // The still-registered callback sees the next commit; the released one does not.
    int before = throws->load();
    r.write([&] { r.create_object("Person", 3); });
    CHECK(eventually([&] { return throws->load() > before; }));
    seen->update([&] { CHECK_EQ(seen->calls, calls); });
    bad.reset();
    CHECK(r.refresh() == false);  // this handle committed last: nothing new
    CHECK_EQ(r.objects("Person").count(), 3u);
    // An empty std::function is the library's INVALID_ARGUMENT.
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, r.add_change_callback(nullptr));
}

// ---------------------------------------------------------------------------------------------
// Users and sync (against the shoal-server at $SHOAL_TEST_AUTH_URL)

std::string auth_url() {
    const char *url = std::getenv("SHOAL_TEST_AUTH_URL");
    if (!url || !*url) throw Skipped{"SHOAL_TEST_AUTH_URL is not set"};
    return url;
}

/// "realm://HOST:PORT<path>" for the server at $SHOAL_TEST_AUTH_URL ("http://HOST:PORT/auth").
std::string sync_url(const std::string &path) {
    std::string auth = auth_url();
    size_t host = auth.find("://");
    CHECK(host != std::string::npos);
    host += 3;
    size_t end = auth.find('/', host);
    return "realm://" + auth.substr(host, end == std::string::npos ? std::string::npos : end - host) + path;
}

shoal::Schema item_schema() {
    auto s = shoal::Schema::create();
    s.add_class("Item", "id")
        .add_property("Item", "id", shoal::PropertyType::Int)
        .add_property("Item", "name", shoal::PropertyType::String);
    return s;
}

shoal::Config synced_config(const shoal::SyncConfig &sc) {
    auto c = shoal::Config::create("unused");
    c.set_schema(item_schema()).set_sync(sc);
    return c;
}

void add_items(shoal::Realm &r, int64_t from, int64_t to) {
    r.write([&] {
        for (int64_t id = from; id < to; id++) r.create_object("Item", id).set("name", "item " + std::to_string(id));
    });
}

bool wait_for_state(const shoal::Session &s, shoal::SessionState state) {
    return eventually([&] { return s.state() == state; });
}

/// Logs `user` out and waits until the server confirmed the revocation.
void logout_and_settle(const shoal::App &app, shoal::User &user) {
    user.logout();
    CHECK(eventually([&] { return app.pending_revocations() == 0; }));
}

void test_users() {
    const std::string url = auth_url();
    const std::string name = unique_name("cpp-user");
    shoal::App app = shoal::App::create(path_in("users-app"), "io.shoal.tests.cpp");
    CHECK(!app.current_user().has_value());
    shoal::User user = app.login(shoal::Credentials::password(name, "myPassw0rd", true), url);
    std::string identity = user.identity();
    CHECK(!identity.empty());
    CHECK(user.is_valid());
    CHECK(!user.is_admin());
    CHECK_EQ(user.auth_url(), url);
    CHECK(user.refresh_token().has_value());
    CHECK(user.to_json().find(identity) != std::string::npos);
    std::optional<shoal::User> current = app.current_user();
    CHECK(current.has_value());
    CHECK_EQ(current->identity(), identity);
    CHECK_EQ(app.get_user(identity)->identity(), identity);
    CHECK(!app.get_user("nobody").has_value());
    CHECK_EQ(app.all_users().size(), 1u);
    CHECK(!user.access_token("/" + identity + "/things").empty());
    {
        // The management realm: the user's synced realm with the permission classes.
        shoal::Realm management = user.open_management_realm();
        std::string schema = management.schema_json();
        for (const char *cls : {"PermissionOffer", "PermissionOfferResponse", "PermissionChange"})
            CHECK(schema.find(cls) != std::string::npos);
        management.close();
    }

    // Auth errors.
    CHECK_ERROR(SHOAL_ERR_EXISTING_ACCOUNT, app.login(shoal::Credentials::password(name, "x", true), url));
    shoal::Error e =
        CHECK_ERROR(SHOAL_ERR_INVALID_CREDENTIALS, app.login(shoal::Credentials::password(name, "wrong"), url));
    CHECK_EQ(e.category(), SHOAL_ERR_CATEGORY_AUTH);
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, shoal::Credentials::password("", "x"));

    // A second user: current_user is ambiguous.
    shoal::User offline = app.login(shoal::Credentials::access_token("token-x", "offline-x"), url);
    CHECK_ERROR(SHOAL_ERR_MULTIPLE_USERS_LOGGED_IN, app.current_user());
    CHECK_EQ(app.all_users().size(), 2u);
    offline.logout();

    // Logout.
    logout_and_settle(app, user);
    CHECK(!user.is_valid());
    CHECK(!user.refresh_token().has_value());
    CHECK(!app.current_user().has_value());
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, shoal::SyncConfig::create(user, sync_url("/~/x")));
}

void test_sync_two_devices() {
    const std::string auth = auth_url();
    const std::string name = unique_name("cpp-sync");
    const std::string url = sync_url("/~/cpptest");
    // Two devices: two apps with their own base directories, one registered user.
    shoal::App app_a = shoal::App::create(path_in("sync-device-a"), "io.shoal.tests.cpp");
    shoal::App app_b = shoal::App::create(path_in("sync-device-b"), "io.shoal.tests.cpp");
    shoal::User ua = app_a.login(shoal::Credentials::password(name, "myPassw0rd", true), auth);
    shoal::User ub = app_b.login(shoal::Credentials::password(name, "myPassw0rd"), auth);
    const std::string identity = ua.identity();
    CHECK_EQ(ub.identity(), identity);

    struct Errors : Shared {
        int calls = 0;
        std::vector<std::string> seen;
    };
    auto errors = std::make_shared<Errors>();
    auto on_error = [errors](shoal::Session, shoal::SyncError e) {
        errors->update([&] {
            errors->calls++;
            errors->seen.push_back(std::string(e.name()) + ": " + e.message);
        });
    };

    // Device A: the session exists before the open, so no state change is missed.
    shoal::SyncConfig sca = shoal::SyncConfig::create(ua, url);
    sca.set_error_handler(on_error).set_stop_policy(shoal::StopPolicy::AfterChangesUploaded);
    CHECK_EQ(sca.server_path(), "/" + identity + "/cpptest");
    CHECK_EQ(sca.server_url(), sync_url("/" + identity + "/cpptest"));
    shoal::Config ca = synced_config(sca);
    CHECK_EQ(ca.path(), sca.path());
    shoal::Session sa = app_a.session(ca);
    CHECK(sa.state() == shoal::SessionState::Inactive);
    struct States : Shared {
        unsigned seen = 0;
        bool bad = false;
    };
    auto states = std::make_shared<States>();
    auto conns = std::make_shared<States>();
    shoal::Token st = sa.add_state_callback([states](shoal::SessionState from, shoal::SessionState to) {
        states->update([&] {
            if (from == to) states->bad = true;
            states->seen |= 1u << static_cast<int>(to);
        });
    });
    shoal::Token ct = sa.add_connection_callback([conns](shoal::ConnectionState from, shoal::ConnectionState to) {
        conns->update([&] {
            if (from == to) conns->bad = true;
            conns->seen |= 1u << static_cast<int>(to);
        });
    });
    shoal::Realm ra = shoal::Realm::open(ca);
    CHECK_EQ(ra.session().path(), sa.path());
    CHECK_EQ(ra.session().user().identity(), identity);
    add_items(ra, 0, 5);

    struct Progress : Shared {
        int calls = 0;
        uint64_t transferred = 0, transferable = 0;
        bool complete = false, went_back = false;
    };
    auto up = std::make_shared<Progress>();
    shoal::Token pt = sa.add_progress_callback(shoal::ProgressDirection::Upload, shoal::ProgressMode::CurrentChanges,
                                               [up](uint64_t transferred, uint64_t transferable) {
                                                   up->update([&] {
                                                       if (transferred < up->transferred) up->went_back = true;
                                                       up->calls++;
                                                       up->transferred = transferred;
                                                       up->transferable = transferable;
                                                       if (transferable > 0 && transferred >= transferable)
                                                           up->complete = true;
                                                   });
                                               });
    sa.wait_for_upload(kWait);
    CHECK(up->wait([&] { return up->complete; }));
    up->update([&] {
        CHECK(up->transferable > 0);
        CHECK_EQ(up->transferred, up->transferable);
        CHECK(!up->went_back);
    });
    CHECK(states->wait([&] { return (states->seen & (1u << static_cast<int>(shoal::SessionState::Active))) != 0; }));
    CHECK(conns->wait(
        [&] { return (conns->seen & (1u << static_cast<int>(shoal::ConnectionState::Connected))) != 0; }));
    CHECK(sa.state() == shoal::SessionState::Active);
    CHECK(sa.connection_state() == shoal::ConnectionState::Connected);

    // Device B, with a token binder that fetches real access tokens for the session.
    struct Binder : Shared {
        int calls = 0;
        std::string path;
        std::string failure;
    };
    auto binder = std::make_shared<Binder>();
    auto binder_user = std::make_shared<shoal::User>(ub.clone());
    shoal::SyncConfig scb = shoal::SyncConfig::create(ub, url);
    scb.set_error_handler(on_error).set_token_binder([binder, binder_user](shoal::Session s, const std::string &path) {
        std::string failure;
        try {
            s.bind_token(binder_user->access_token(path));
        } catch (const shoal::Error &e) {
            failure = e.what();
        }
        binder->update([&] {
            binder->calls++;
            binder->path = path;
            binder->failure = failure;
        });
    });
    shoal::Config cb = synced_config(scb);
    shoal::Realm rb = shoal::Realm::open(cb);
    shoal::Session sb = rb.session();
    sb.wait_for_download(kWait);
    rb.refresh();
    CHECK_EQ(rb.objects("Item").count(), 5u);
    CHECK_EQ(rb.find_object("Item", 3)->get("name"), Value("item 3"));
    binder->update([&] {
        CHECK(binder->calls >= 1);
        CHECK_EQ(binder->path, "/" + identity + "/cpptest");
        CHECK_EQ(binder->failure, std::string());
    });

    // A write on B reaches A.
    add_items(rb, 5, 7);
    sb.wait_for_upload(kWait);
    sa.wait_for_download(kWait);
    ra.refresh();
    CHECK_EQ(ra.objects("Item").count(), 7u);
    rb.refresh();
    CHECK_EQ(ra.dump_json(), rb.dump_json());

    // Paused: local writes go on, waits time out; resumed: they upload.
    sa.pause();
    CHECK(wait_for_state(sa, shoal::SessionState::Inactive));
    add_items(ra, 7, 8);
    shoal::Error timeout = CHECK_ERROR(SHOAL_ERR_TIMEOUT, sa.wait_for_upload(50ms));
    CHECK_EQ(timeout.category(), SHOAL_ERR_CATEGORY_CLIENT);
    sa.resume();
    sa.wait_for_upload(kWait);
    sb.wait_for_download(kWait);
    rb.refresh();
    CHECK_EQ(rb.objects("Item").count(), 8u);

    // Unregistering; no session error on the way.
    st.reset();
    ct.reset();
    pt.reset();
    states->update([&] { CHECK(!states->bad); });
    conns->update([&] { CHECK(!conns->bad); });
    errors->update([&] {
        if (errors->calls != 0) fail(__FILE__, __LINE__, "unexpected sync error: " + errors->seen.front());
    });

    // Stopping sync before the apps go: queued callbacks run, sessions pause.
    app_a.stop_sync(kWait);
    app_b.stop_sync(kWait);
    CHECK(wait_for_state(sa, shoal::SessionState::Inactive));
    CHECK(wait_for_state(sb, shoal::SessionState::Inactive));
}

void test_sync_error_handler() {
    const std::string auth = auth_url();
    shoal::App app = shoal::App::create(path_in("sync-errors-app"), "io.shoal.tests.cpp");
    shoal::User owner = app.login(shoal::Credentials::password(unique_name("cpp-owner"), "myPassw0rd", true), auth);
    shoal::User other = app.login(shoal::Credentials::password(unique_name("cpp-other"), "myPassw0rd", true), auth);
    const std::string path = "/" + owner.identity() + "/cppdenied";
    // Access tokens: a user's own paths only.
    CHECK_ERROR(SHOAL_ERR_ACCESS_DENIED, other.access_token(path));

    // `other` syncs the owner's realm: a fatal ACCESS_DENIED for the error handler; opening
    // works offline. The handler throws afterwards: reported, never reaching the library.
    struct Errors : Shared {
        int calls = 0;
        int fatal = 0;
        shoal::SyncError first;
        std::optional<shoal::Session> kept;
        shoal::SessionState state_in_call = shoal::SessionState::Inactive;
    };
    auto errors = std::make_shared<Errors>();
    auto alive = std::make_shared<int>(0);
    std::weak_ptr<int> watch = alive;
    shoal::SyncConfig sc = shoal::SyncConfig::create(other, sync_url(path));
    sc.set_error_handler([errors, alive](shoal::Session session, shoal::SyncError e) {
        shoal::SessionState state = session.state();
        errors->update([&] {
            errors->calls++;
            if (e.is_fatal && errors->fatal++ == 0) {
                errors->first = e;
                errors->state_in_call = state;
                errors->kept = std::move(session);
            }
        });
        throw std::runtime_error("expected test exception from a sync error handler");
    });
    alive.reset();
    shoal::Config config = synced_config(sc);
    shoal::Realm realm = shoal::Realm::open(config);
    shoal::Session session = realm.session();
    CHECK(errors->wait([&] { return errors->fatal >= 1; }));
    shoal::SyncError first;
    std::optional<shoal::Session> kept;
    errors->update([&] {
        first = errors->first;
        kept = std::move(errors->kept);  // breaks the cycle handler -> state -> session -> handler
        errors->kept.reset();
    });
    CHECK_EQ(first.code, SHOAL_ERR_ACCESS_DENIED);
    CHECK_EQ(std::string(first.name()), std::string("ACCESS_DENIED"));
    CHECK_EQ(first.category, SHOAL_ERR_CATEGORY_AUTH);
    CHECK(first.is_fatal);
    CHECK(!first.is_client_reset);
    CHECK(!first.message.empty());
    CHECK(!first.original_path.has_value());
    CHECK(kept.has_value());
    CHECK(wait_for_state(session, shoal::SessionState::Error));
    CHECK(kept->state() == shoal::SessionState::Error);  // the kept clone is the same session
    CHECK_EQ(kept->path(), session.path());
    // Waits report the session's error; the realm still works offline.
    CHECK_ERROR(SHOAL_ERR_ACCESS_DENIED, session.wait_for_upload(kWait));
    CHECK_ERROR(SHOAL_ERR_ACCESS_DENIED, session.wait_for_download(kWait));
    add_items(realm, 0, 1);
    CHECK_EQ(realm.objects("Item").count(), 1u);

    // The handler is deleted once nothing uses it.
    kept.reset();
    session.reset();
    realm.reset();
    config.reset();
    CHECK(!watch.expired());
    sc.reset();
    CHECK(eventually([&] { return watch.expired(); }));

    // Option errors.
    shoal::SyncConfig sc2 = shoal::SyncConfig::create(owner, sync_url("/~/cppoptions"));
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, sc2.set_stop_policy(static_cast<shoal::StopPolicy>(7)));
    sc2.set_wait_for_initial_data(true, 1s).set_wait_for_initial_data(false).set_error_handler(nullptr).set_token_binder(
        nullptr);
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, shoal::SyncConfig::create(owner, "http://127.0.0.1:1/~/x"));
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, app.session(people_config("local-for-session.realm")));

    logout_and_settle(app, other);
    logout_and_settle(app, owner);
}

void test_client_reset_and_recovery() {
    const std::string auth = auth_url();
    shoal::App app = shoal::App::create(path_in("sync-reset-app"), "io.shoal.tests.cpp");
    shoal::User user = app.login(shoal::Credentials::password(unique_name("cpp-reset"), "myPassw0rd", true), auth);
    shoal::SyncConfig sc = shoal::SyncConfig::create(user, sync_url("/~/cppreset"));
    sc.set_stop_policy(shoal::StopPolicy::AfterChangesUploaded);
    shoal::Config config = synced_config(sc);
    shoal::Realm realm = shoal::Realm::open(config);
    shoal::Session session = realm.session();
    add_items(realm, 0, 3);
    session.wait_for_upload(kWait);
    const std::string original = session.path();

    CHECK_ERROR(SHOAL_ERR_REALM_IN_USE, app.execute_client_reset(original));
    realm.reset();
    // AFTER_CHANGES_UPLOADED: the session uploads what is left, then stops.
    CHECK(wait_for_state(session, shoal::SessionState::Inactive));
    std::string backup;
    CHECK(eventually([&] {
        try {
            backup = app.execute_client_reset(original);
            return true;
        } catch (const shoal::Error &e) {
            if (e.code() != SHOAL_ERR_REALM_IN_USE) throw;
            return false;
        }
    }));
    CHECK(!std::filesystem::exists(original));
    CHECK(std::filesystem::exists(backup));
    CHECK(backup.find("recovered-realms") != std::string::npos);
    shoal::Realm recovered = shoal::Realm::open(shoal::Config::for_recovery(backup, {}, item_schema()));
    CHECK_EQ(recovered.objects("Item").count(), 3u);
    CHECK_ERROR(SHOAL_ERR_READ_ONLY, recovered.begin_write());
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, recovered.session());
    CHECK_ERROR(SHOAL_ERR_FILE_NOT_FOUND, app.execute_client_reset(original));
    app.stop_sync(kWait);
    logout_and_settle(app, user);
}

}  // namespace

void test_fine_grained_notifications_with_lambdas() {
    // Notifications wait for this thread: the scheduler's notify only counts wake-ups.
    auto wakeups = std::make_shared<std::atomic<int>>(0);
    shoal::Scheduler scheduler = shoal::Scheduler::create([wakeups] { wakeups->fetch_add(1); });
    shoal::Config config = people_config("fine.realm");
    config.set_scheduler(scheduler);
    shoal::Realm r = shoal::Realm::open(config);
    r.write([&] {
        for (int64_t id = 1; id <= 3; id++) r.create_object("Person", id).set("age", id * 10);
    });
    auto pump = [&](int at_least) {
        for (int i = 0; i < 3000 && wakeups->load() < at_least; i++)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        CHECK(wakeups->load() >= at_least);
        return scheduler.perform_work();
    };
    const auto main_thread = std::this_thread::get_id();
    std::vector<shoal::CollectionChanges> seen;
    bool on_main = true;
    shoal::Results adults = r.query("Person", "age > $0", {int64_t(10)});
    shoal::Token token = adults.observe([&](const shoal::CollectionChanges &c) {
        seen.push_back(c);
        on_main = on_main && std::this_thread::get_id() == main_thread;
    });
    CHECK(pump(1) >= 1u);
    CHECK_EQ(seen.size(), 1u);
    CHECK(seen[0].initial);
    // Old [2 3]: delete 2, modify 3, insert 4.
    r.write([&] {
        r.find_object("Person", int64_t(2))->remove();
        r.find_object("Person", int64_t(3))->set("name", "Cy");
        r.create_object("Person", int64_t(4)).set("age", int64_t(40));
    });
    pump(2);
    CHECK_EQ(seen.size(), 2u);
    CHECK(seen[1].deletions == std::vector<size_t>{0});
    CHECK(seen[1].insertions == std::vector<size_t>{1});
    CHECK(seen[1].modifications == std::vector<size_t>{0});
    CHECK(on_main);

    shoal::Object p1 = *r.find_object("Person", int64_t(1));
    std::vector<shoal::ObjectChange> object_changes;
    shoal::Token ot = p1.observe([&](const shoal::ObjectChange &c) { object_changes.push_back(c); });
    shoal::List tags = p1.list("tags");
    r.write([&] {
        tags.push_back("a").push_back("b").push_back("c");
    });
    std::vector<shoal::CollectionChanges> list_changes;
    shoal::Token lt = tags.observe([&](const shoal::CollectionChanges &c) { list_changes.push_back(c); });
    // Runs the queued work until `done` (or gives up after a while).
    auto pump_until = [&](auto done) {
        for (int i = 0; i < 3000 && !done(); i++) {
            scheduler.perform_work();
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    };
    pump_until([&] { return list_changes.size() == 1 && !object_changes.empty(); });
    r.write([&] { tags.move(0, 2); });
    pump_until([&] { return list_changes.size() == 2 && object_changes.size() == 2; });
    CHECK_EQ(list_changes.size(), 2u);
    CHECK(list_changes[0].initial);
    CHECK(list_changes[1].moves == (std::vector<std::pair<size_t, size_t>>{{0, 2}}));
    CHECK(!object_changes.empty() && object_changes[0].initial);
    CHECK(object_changes.back().changed == std::vector<std::string>{"tags"});

    // Destroying the token stops the lambda, even for work already queued.
    token.unregister();
    r.write([&] { r.create_object("Person", int64_t(5)).set("age", int64_t(50)); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    scheduler.perform_work();
    CHECK_EQ(seen.size(), 2u);
}

void test_async_write_and_open_on_an_app_scheduler() {
    // The app's "event loop": notify only counts; this thread performs the work.
    struct Wakeups : Shared {
        int notified = 0;
    };
    auto wake = std::make_shared<Wakeups>();
    shoal::Scheduler scheduler = shoal::Scheduler::create([wake] { wake->update([&] { wake->notified++; }); });
    auto run_loop_once = [&] {
        CHECK(wake->wait([&] { return wake->notified > 0; }));
        wake->update([&] { wake->notified = 0; });
        return scheduler.perform_work();
    };
    const std::thread::id me = std::this_thread::get_id();
    auto config = people_config("async.realm");
    config.set_scheduler(scheduler);

    // open_async: the callback runs here, in perform_work.
    std::optional<shoal::Realm> opened;
    bool opened_here = false, open_failed = true;
    shoal::AsyncOpenTask task = shoal::Realm::open_async(config, [&](std::optional<shoal::Realm> r, std::optional<shoal::Error> e) {
        open_failed = e.has_value();
        opened_here = std::this_thread::get_id() == me;
        opened = std::move(r);
    });
    CHECK_EQ(run_loop_once(), size_t(1));
    CHECK(opened && opened_here && !open_failed);
    CHECK(!task.cancel());  // too late: the callback has the realm
    shoal::Realm realm = std::move(*opened);

    // write_async: the lambda runs on a library thread, the completion here, after a refresh.
    std::thread::id writer;
    std::optional<shoal::Error> error{shoal::Error(0, 0, "not called")};
    uint64_t version = 0;
    bool completed_here = false;
    realm.write_async([&](shoal::Realm &txn) {
        writer = std::this_thread::get_id();
        txn.create_object("Person", 1);
        txn.create_object("Person", 2);
    }, [&](std::optional<shoal::Error> e, uint64_t v) {
        completed_here = std::this_thread::get_id() == me;
        error = std::move(e);
        version = v;
    });
    CHECK(!realm.is_in_transaction());
    CHECK_EQ(run_loop_once(), size_t(1));
    CHECK(!error);
    CHECK(completed_here);
    CHECK(writer != me);
    CHECK_EQ(realm.version(), version);
    CHECK_EQ(realm.objects("Person").count(), size_t(2));

    // A lambda that throws writes nothing; its shoal::Error reaches the completion.
    realm.write_async([](shoal::Realm &txn) {
        txn.create_object("Person", 3);
        txn.create_object("NoSuchClass");
    }, [&](std::optional<shoal::Error> e, uint64_t v) {
        error = std::move(e);
        version = v;
    });
    CHECK_EQ(run_loop_once(), size_t(1));
    CHECK(error && error->code() == SHOAL_ERR_NO_SUCH_CLASS);
    CHECK_EQ(version, uint64_t(0));
    realm.refresh();
    CHECK_EQ(realm.objects("Person").count(), size_t(2));

    // Cancelled before the loop ran the callback: nothing is delivered, the new file is gone.
    auto fresh = people_config("async-cancelled.realm");
    fresh.set_scheduler(scheduler);
    bool called = false;
    shoal::AsyncOpenTask cancelled = shoal::Realm::open_async(fresh, [&](std::optional<shoal::Realm>, std::optional<shoal::Error>) { called = true; });
    CHECK(wake->wait([&] { return wake->notified > 0; }));
    CHECK(std::filesystem::exists(fresh.path()));
    CHECK(cancelled.cancel());
    CHECK(!std::filesystem::exists(fresh.path()));
    scheduler.perform_work();
    CHECK(!called);
}

void test_sync_files_sessions_and_default_handler() {
    const std::string auth = auth_url();
    shoal::App app = shoal::App::create(path_in("sync-files-app"), "io.shoal.tests.cpp");
    shoal::User owner = app.login(shoal::Credentials::password(unique_name("cpp-fowner"), "myPassw0rd", true), auth);
    shoal::User user = app.login(shoal::Credentials::password(unique_name("cpp-files"), "myPassw0rd", true), auth);
    const std::string id = user.identity();

    // name() and directory(): refusals leave the configuration as it was.
    shoal::SyncConfig sc = shoal::SyncConfig::create(user, sync_url("/~/sub/tasks"));
    const std::string before = sc.path();
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, sc.set_name(""));
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, sc.set_directory(""));
    CHECK_ERROR(SHOAL_ERR_INVALID_ARGUMENT, sc.set_directory("/proc"));
    CHECK_EQ(sc.path(), before);
    const std::string root = path_in("cpp-elsewhere");
    sc.set_directory(root).set_name("named").set_stop_policy(shoal::StopPolicy::Immediately);
    const std::string real_root = std::filesystem::canonical(root).string();
    CHECK_EQ(sc.directory(), real_root);
    const std::string expected = real_root + "/" + id + "/" + id + "/sub/named";
    CHECK_EQ(sc.path(), expected);

    shoal::Config config = synced_config(sc);
    shoal::Realm realm = shoal::Realm::open(config);
    add_items(realm, 0, 2);
    shoal::Session session = realm.session();
    session.wait_for_upload(kWait);

    // The default error handler; the session it reports stops in Error and leaves the list.
    struct Seen : Shared {
        int fatal = 0;
        int32_t code = 0;
    };
    auto seen = std::make_shared<Seen>();
    shoal::set_default_sync_error_handler([seen](shoal::Session, shoal::SyncError e) {
        if (e.is_fatal) seen->update([&] { if (seen->fatal++ == 0) seen->code = e.code; });
    });
    shoal::SyncConfig refused_sc = shoal::SyncConfig::create(user, sync_url("/" + owner.identity() + "/private"));
    shoal::set_default_sync_error_handler(nullptr);
    shoal::Config refused_config = synced_config(refused_sc);
    shoal::Realm refused = shoal::Realm::open(refused_config);
    CHECK(seen->wait([&] { return seen->fatal >= 1; }));
    CHECK_EQ(seen->code, SHOAL_ERR_ACCESS_DENIED);
    CHECK(wait_for_state(refused.session(), shoal::SessionState::Error));
    std::vector<shoal::Session> listed = user.all_sessions();
    CHECK_EQ(listed.size(), 1u);
    CHECK_EQ(listed.at(0).path(), expected);
    CHECK(owner.all_sessions().empty());
    refused.reset();
    refused_config.reset();
    refused_sc.reset();

    // Logout with nothing open deletes the user's files at once.
    realm.reset();
    CHECK(wait_for_state(session, shoal::SessionState::Inactive));
    logout_and_settle(app, user);
    CHECK(!std::filesystem::exists(expected));
    CHECK(!std::filesystem::exists(real_root + "/" + id));
    CHECK(std::filesystem::exists(real_root));
    logout_and_settle(app, owner);
}

int main() {
    make_temp_dir();
    std::printf("shoal %s (header %s), C++ binding, files in %s\n", shoal::version().c_str(), SHOAL_VERSION,
                g_dir.c_str());

    RUN_TEST(test_version_and_error_type);
    RUN_TEST(test_schema_and_config);
    RUN_TEST(test_objects_and_values);
    RUN_TEST(test_errors_become_exceptions);
    RUN_TEST(test_moved_from_and_released_handles);
    RUN_TEST(test_write_commits_or_rolls_back);
    RUN_TEST(test_queries_and_aggregates);
    RUN_TEST(test_iteration_and_string_arguments);
    RUN_TEST(test_lists);
    RUN_TEST(test_encryption);
    RUN_TEST(test_change_callback);
    RUN_TEST(test_fine_grained_notifications_with_lambdas);
    RUN_TEST(test_async_write_and_open_on_an_app_scheduler);
    RUN_TEST(test_users);
    RUN_TEST(test_sync_two_devices);
    RUN_TEST(test_sync_error_handler);
    RUN_TEST(test_client_reset_and_recovery);
    RUN_TEST(test_sync_files_sessions_and_default_handler);

    std::error_code ec;
    std::filesystem::remove_all(g_dir, ec);
    if (g_skipped)
        std::printf("%d passed, %d failed, %d skipped\n", g_passed, g_failed, g_skipped);
    else
        std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}

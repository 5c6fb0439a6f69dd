/*
 * shoal.hpp: a header-only C++17 binding of Shoal's C API (include/shoal.h).
 *
 * Build: installed by scripts/install.sh beside shoal.h, so `#include <shoal.hpp>` with
 * `pkg-config --cflags --libs shoal` or CMake's Shoal::shoal; in the repository, add
 * `-I include -I bindings/cpp` and link libshoal.a (with `-lpthread -ldl -lm`) or libshoal.so.
 * tests/cpp/test_shoal.cpp uses every part of it.
 *
 * Ownership. Every class over a C handle (Realm, Object, Results, Session, Token, ...) derives
 * from shoal::Handle<T>: it owns one reference, is move-only, releases the reference in its
 * destructor, and clone() makes a second, independent reference to the same object. A
 * default-constructed or moved-from wrapper is empty; calling a method on it throws
 * shoal::Error with code SHOAL_ERR_MISUSE (never a crash). Strings come back as std::string
 * (the C string is freed), bytes as std::vector<uint8_t>, values as shoal::Value; "nothing"
 * (a C NULL without an error) comes back as std::optional. String arguments are StringArg: a C
 * string, std::string or std::string_view (copied, since the C API needs the NUL). Results and
 * List work with range-for (`for (auto &object : results)`, `for (const auto &v : list)`).
 *
 * Errors. Every C call that reports failure becomes a thrown shoal::Error (a
 * std::runtime_error) carrying code() (SHOAL_ERR_*), category() (SHOAL_ERR_CATEGORY_*), name()
 * ("NO_SUCH_CLASS", ...), message() and path(), read from the thread's last error at once.
 * Realm::write(f) commits after f, or cancels the transaction if f throws and rethrows.
 *
 * Threads and callbacks. Handles may be used from any thread (a single wrapper object must not
 * be moved or reset while another thread uses it); a realm reads a consistent snapshot until
 * refresh(), begin_write() or its own commit. Callbacks are std::function objects (so they must
 * be copyable: hold handles in them through std::shared_ptr), moved to the heap and deleted by
 * the library's free_userdata once nothing can call them any more. That may be after the Token
 * is destroyed (a call already queued still runs) and on a library thread, so capture state by
 * value or std::shared_ptr, not by reference to locals. A sync error handler or token binder
 * lives as long as its SyncConfig, the Configs it was copied into and their Sessions: one that
 * keeps a Session clone in its own state keeps itself alive until that clone is dropped.
 * Callbacks run on library threads and may call Shoal; with a Scheduler set on a Config
 * (Config::set_scheduler), the change callbacks and async completions (Realm::write_async,
 * Realm::open_async) of its realms run on the thread that calls Scheduler::perform_work instead.
 * An exception thrown by a callback never reaches the library: it is caught, reported on
 * stderr and otherwise ignored (the function of Realm::write_async is the exception: what it
 * throws cancels the write and reaches the completion).
 */
#ifndef SHOAL_HPP
#define SHOAL_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#if defined(__has_include)
#if __has_include(<span>) && __cplusplus > 201703L
#include <span>
#endif
#endif

#include "shoal.h"

namespace shoal {

// ---------------------------------------------------------------------------------------------
// Errors

/// A failed Shoal call: the thread's last error, copied when the call failed.
class Error : public std::runtime_error {
public:
    Error(int32_t code, int32_t category, const std::string &message, const std::string &path = {})
        : std::runtime_error(describe(code, message, path)),
          code_(code),
          category_(category),
          detail_(std::make_shared<const Detail>(Detail{message, path})) {}

    /// One of the SHOAL_ERR_* codes (sync protocol and HTTP codes pass through as themselves).
    int32_t code() const noexcept { return code_; }
    /// One of the SHOAL_ERR_CATEGORY_* values.
    int32_t category() const noexcept { return category_; }
    /// The code's constant name without its prefix, e.g. "NO_SUCH_CLASS" (static storage).
    const char *name() const noexcept { return shoal_error_name(code_); }
    /// The library's message, without the name and code that what() adds.
    const std::string &message() const noexcept { return detail_->message; }
    /// The file the error is about, or empty.
    const std::string &path() const noexcept { return detail_->path; }

private:
    struct Detail {
        std::string message;
        std::string path;
    };

    static std::string describe(int32_t code, const std::string &message, const std::string &path) {
        std::string s = shoal_error_name(code);
        s += " (" + std::to_string(code) + "): " + message;
        if (!path.empty()) s += " [" + path + "]";
        return s;
    }

    int32_t code_;
    int32_t category_;
    std::shared_ptr<const Detail> detail_;  // shared: copying an exception never throws
};

/// A string argument: a C string, a std::string or a std::string_view (or anything that
/// converts to one of them). The C API takes NUL-terminated strings, so a std::string or a C
/// string is passed as it is and a std::string_view is copied (a string_view need not end in a
/// NUL). Only for parameters: it may point into its argument.
class StringArg {
public:
    StringArg(const char *s) noexcept : p_(s) {}
    StringArg(const std::string &s) noexcept : p_(s.c_str()) {}
    StringArg(std::string_view s) : copy_(s), p_(copy_.c_str()) {}
    /// Anything else that converts to std::string (a std::filesystem::path, ...): copied.
    template <typename T, std::enable_if_t<std::is_convertible_v<const T &, std::string> &&
                                               !std::is_convertible_v<const T &, std::string_view> &&
                                               !std::is_convertible_v<const T &, const char *>,
                                           int> = 0>
    StringArg(const T &s) : copy_(s), p_(copy_.c_str()) {}
    StringArg(const StringArg &) = delete;
    StringArg &operator=(const StringArg &) = delete;

    /// The NUL-terminated string, valid while the argument lives.
    const char *c_str() const noexcept { return p_; }

private:
    std::string copy_;  // the copy of a string_view (declared first: p_ points into it)
    const char *p_;
};

namespace detail {

/// Throws the calling thread's last error (call right after the failing C call).
[[noreturn]] inline void throw_last_error() {
    shoal_error_t e;
    if (shoal_get_last_error(&e))
        throw Error(e.code, e.category, e.message ? e.message : "", e.path ? e.path : "");
    throw Error(SHOAL_ERR_UNKNOWN, SHOAL_ERR_CATEGORY_INTERNAL, "a Shoal call failed without an error");
}

inline void check(bool ok) {
    if (!ok) throw_last_error();
}

template <typename T>
T *check(T *p) {
    if (!p) throw_last_error();
    return p;
}

inline int64_t check_count(int64_t n) {
    if (n < 0) throw_last_error();
    return n;
}

/// A C string to free with shoal_free, as a std::string; NULL throws the last error.
inline std::string take_string(char *s) {
    check(s);
    struct Free {
        char *p;
        ~Free() { shoal_free(p); }
    } guard{s};
    return std::string(s);
}

/// As take_string, but NULL without an error is std::nullopt.
inline std::optional<std::string> take_optional_string(char *s) {
    if (!s) {
        if (shoal_get_last_error(nullptr)) throw_last_error();
        return std::nullopt;
    }
    return take_string(s);
}

inline uint64_t timeout_ms(std::chrono::milliseconds t) noexcept {
    if (t == std::chrono::milliseconds::max()) return UINT64_MAX;
    return t.count() < 0 ? 0 : static_cast<uint64_t>(t.count());
}

/// Reports an exception a callback let escape (call inside a catch block).
inline void report_callback_exception(const char *callback) noexcept {
    try {
        throw;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "shoal: a %s callback threw (ignored): %s\n", callback, e.what());
    } catch (...) {
        std::fprintf(stderr, "shoal: a %s callback threw (ignored): unknown exception\n", callback);
    }
}

/// An optional string argument as the C API takes it: NULL, or a NUL-terminated copy.
class OptionalCString {
public:
    explicit OptionalCString(std::optional<std::string_view> s) {
        if (s) copy_.emplace(*s);
    }
    const char *get() const noexcept { return copy_ ? copy_->c_str() : nullptr; }

private:
    std::optional<std::string> copy_;
};

template <typename F>
void free_box(void *userdata) noexcept {
    delete static_cast<F *>(userdata);
}

inline const char *handle_name(const shoal_app_t *) noexcept { return "shoal::App"; }
inline const char *handle_name(const shoal_async_open_task_t *) noexcept { return "shoal::AsyncOpenTask"; }
inline const char *handle_name(const shoal_config_t *) noexcept { return "shoal::Config"; }
inline const char *handle_name(const shoal_credentials_t *) noexcept { return "shoal::Credentials"; }
inline const char *handle_name(const shoal_list_t *) noexcept { return "shoal::List"; }
inline const char *handle_name(const shoal_object_t *) noexcept { return "shoal::Object"; }
inline const char *handle_name(const shoal_realm_t *) noexcept { return "shoal::Realm"; }
inline const char *handle_name(const shoal_results_t *) noexcept { return "shoal::Results"; }
inline const char *handle_name(const shoal_schema_t *) noexcept { return "shoal::Schema"; }
inline const char *handle_name(const shoal_scheduler_t *) noexcept { return "shoal::Scheduler"; }
inline const char *handle_name(const shoal_session_t *) noexcept { return "shoal::Session"; }
inline const char *handle_name(const shoal_sync_config_t *) noexcept { return "shoal::SyncConfig"; }
inline const char *handle_name(const shoal_token_t *) noexcept { return "shoal::Token"; }
inline const char *handle_name(const shoal_user_t *) noexcept { return "shoal::User"; }

}  // namespace detail

/// The library's version "X.Y.Z" (compare with SHOAL_VERSION, the header's).
inline std::string version() { return shoal_libversion(); }

// ---------------------------------------------------------------------------------------------
// Handles

/// Owns one reference to a C handle of type T: move-only; the destructor releases it.
template <typename T>
class Handle {
public:
    Handle() noexcept = default;
    /// Takes over a reference returned by the C API.
    explicit Handle(T *adopt) noexcept : p_(adopt) {}
    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;
    Handle(Handle &&other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
    Handle &operator=(Handle &&other) noexcept {
        if (this != &other) reset(std::exchange(other.p_, nullptr));
        return *this;
    }
    ~Handle() { reset(); }

    /// The C handle (still owned by this object), or NULL when empty.
    T *get() const noexcept { return p_; }
    /// The C handle; throws shoal::Error (SHOAL_ERR_MISUSE) when empty.
    T *checked() const {
        if (!p_)
            throw Error(SHOAL_ERR_MISUSE, SHOAL_ERR_CATEGORY_LOGIC,
                        std::string(detail::handle_name(p_)) +
                            " is empty (default-constructed, moved from or reset)");
        return p_;
    }
    explicit operator bool() const noexcept { return p_ != nullptr; }
    /// Releases the reference (if any) and takes over `adopt`.
    void reset(T *adopt = nullptr) noexcept {
        T *old = std::exchange(p_, adopt);
        if (old) shoal_release(old);
    }
    /// Gives up ownership without releasing: the caller must shoal_release the result.
    T *detach() noexcept { return std::exchange(p_, nullptr); }
    /// A new reference to the same object (shoal_clone).
    Handle clone() const { return Handle(clone_raw()); }

protected:
    T *clone_raw() const { return static_cast<T *>(detail::check(shoal_clone(checked()))); }

private:
    T *p_ = nullptr;
};

/// A callback registration: destroying (or reset()) the token unregisters the callback.
class Token : public Handle<shoal_token_t> {
public:
    using Handle::Handle;
    Token clone() const { return Token(clone_raw()); }
    /// Unregisters the callback (when no clone of the token is left).
    void unregister() noexcept { reset(); }
};

/// What changed in observed results or a list (Results::observe, List::observe): deletions
/// are indices in the old collection, insertions and modifications in the new one; a moved
/// element counts as a deletion and an insertion and is listed in `moves` as (old, new).
struct CollectionChanges {
    uint64_t version = 0;
    /// The first callback: the initial state, nothing listed.
    bool initial = false;
    /// The last callback: the collection is gone (a list whose object was deleted).
    bool collection_deleted = false;
    std::vector<size_t> deletions, insertions, modifications, modifications_old;
    std::vector<std::pair<size_t, size_t>> moves;
};

/// What changed in an observed object (Object::observe).
struct ObjectChange {
    uint64_t version = 0;
    bool initial = false;
    bool deleted = false;
    /// The names of the properties written, in schema order.
    std::vector<std::string> changed;
};


// ---------------------------------------------------------------------------------------------
// Values

/// The kind of a Value (the SHOAL_VALUE_* constants). Declared before the value types so that
/// its enumerators do not trip -Wshadow.
enum class ValueKind : int32_t {
    Null = SHOAL_VALUE_NULL,
    Bool = SHOAL_VALUE_BOOL,
    Int = SHOAL_VALUE_INT,
    Float = SHOAL_VALUE_FLOAT,
    Double = SHOAL_VALUE_DOUBLE,
    String = SHOAL_VALUE_STRING,
    Binary = SHOAL_VALUE_BINARY,
    Timestamp = SHOAL_VALUE_TIMESTAMP,
    Link = SHOAL_VALUE_LINK,
};

/// A property's type (the SHOAL_PROPERTY_TYPE_* constants).
enum class PropertyType : int32_t {
    Bool = SHOAL_PROPERTY_TYPE_BOOL,
    Int = SHOAL_PROPERTY_TYPE_INT,
    Float = SHOAL_PROPERTY_TYPE_FLOAT,
    Double = SHOAL_PROPERTY_TYPE_DOUBLE,
    String = SHOAL_PROPERTY_TYPE_STRING,
    Binary = SHOAL_PROPERTY_TYPE_BINARY,
    Timestamp = SHOAL_PROPERTY_TYPE_TIMESTAMP,
    Link = SHOAL_PROPERTY_TYPE_LINK,
};

/// A point in time: seconds since 1970-01-01T00:00:00Z plus nanoseconds.
struct Timestamp {
    int64_t seconds = 0;
    int32_t nanos = 0;
    friend bool operator==(const Timestamp &a, const Timestamp &b) {
        return a.seconds == b.seconds && a.nanos == b.nanos;
    }
    friend bool operator!=(const Timestamp &a, const Timestamp &b) { return !(a == b); }
};

/// A link to an object: its class and its object key (Object::key()).
struct Link {
    std::string class_name;
    uint64_t key = 0;
    friend bool operator==(const Link &a, const Link &b) {
        return a.key == b.key && a.class_name == b.class_name;
    }
    friend bool operator!=(const Link &a, const Link &b) { return !(a == b); }
};

using Binary = std::vector<uint8_t>;

/// A property value: null, bool, int64, float, double, string, binary, timestamp or link.
/// Integers of any width become int64 (a uint64_t above INT64_MAX wraps). A string may hold
/// NUL bytes. A FLOAT property needs a float value (1.5f), a DOUBLE one a double.
class Value {
public:
    using Variant = std::variant<std::monostate, bool, int64_t, float, double, std::string, Binary,
                                 Timestamp, Link>;
    /// The alternative's index in Variant is its SHOAL_VALUE_* kind.
    using Kind = ValueKind;

    Value() noexcept = default;
    Value(std::nullptr_t) noexcept {}
    Value(std::monostate) noexcept {}
    Value(bool b) noexcept : v_(b) {}
    template <typename I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
    Value(I i) noexcept : v_(static_cast<int64_t>(i)) {}
    Value(float f) noexcept : v_(f) {}
    Value(double d) noexcept : v_(d) {}
    /// NULL is the null value.
    Value(const char *s) : v_(s ? Variant(std::string(s)) : Variant()) {}
    Value(std::string s) noexcept : v_(std::move(s)) {}
    Value(std::string_view s) : v_(std::string(s)) {}
    Value(Binary b) noexcept : v_(std::move(b)) {}
    Value(Timestamp t) noexcept : v_(t) {}
    Value(Link l) noexcept : v_(std::move(l)) {}

    Kind kind() const noexcept { return static_cast<Kind>(v_.index()); }
    bool is_null() const noexcept { return v_.index() == 0; }
    const Variant &variant() const noexcept { return v_; }

    /// The value as one type; shoal::Error (SHOAL_ERR_WRONG_TYPE) if it holds another. On a
    /// temporary (`obj.get("name").as_string()`) the string, bytes or link are returned by value.
    bool as_bool() const { return as<bool>(Kind::Bool); }
    int64_t as_int() const { return as<int64_t>(Kind::Int); }
    float as_float() const { return as<float>(Kind::Float); }
    double as_double() const { return as<double>(Kind::Double); }
    Timestamp as_timestamp() const { return as<Timestamp>(Kind::Timestamp); }
    const std::string &as_string() const & { return as<std::string>(Kind::String); }
    std::string as_string() && { return std::move(as<std::string>(Kind::String)); }
    const Binary &as_binary() const & { return as<Binary>(Kind::Binary); }
    Binary as_binary() && { return std::move(as<Binary>(Kind::Binary)); }
    const Link &as_link() const & { return as<Link>(Kind::Link); }
    Link as_link() && { return std::move(as<Link>(Kind::Link)); }

    /// The kind's name: "NULL", "BOOL", "INT", ...
    static const char *kind_name(Kind k) noexcept {
        static const char *const names[] = {"NULL",   "BOOL",   "INT",       "FLOAT", "DOUBLE",
                                            "STRING", "BINARY", "TIMESTAMP", "LINK"};
        auto i = static_cast<size_t>(k);
        return i < sizeof names / sizeof names[0] ? names[i] : "UNKNOWN";
    }

    friend bool operator==(const Value &a, const Value &b) { return a.v_ == b.v_; }
    friend bool operator!=(const Value &a, const Value &b) { return !(a == b); }

private:
    template <typename T>
    const T &as(Kind k) const {
        if (const T *p = std::get_if<T>(&v_)) return *p;
        throw Error(SHOAL_ERR_WRONG_TYPE, SHOAL_ERR_CATEGORY_LOGIC,
                    std::string("shoal::Value holds ") + kind_name(kind()) + ", not " + kind_name(k));
    }
    template <typename T>
    T &as(Kind k) {
        return const_cast<T &>(static_cast<const Value &>(*this).as<T>(k));
    }

    Variant v_;
};

namespace detail {

/// A C view of `v` (borrowing its strings and bytes: `v` must outlive the view).
inline shoal_value_t to_c(const Value &v) noexcept {
    return std::visit(
        [](const auto &x) -> shoal_value_t {
            using X = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<X, bool>) {
                return shoal_value_bool(x);
            } else if constexpr (std::is_same_v<X, int64_t>) {
                return shoal_value_int(x);
            } else if constexpr (std::is_same_v<X, float>) {
                return shoal_value_float(x);
            } else if constexpr (std::is_same_v<X, double>) {
                return shoal_value_double(x);
            } else if constexpr (std::is_same_v<X, std::string>) {
                return shoal_value_string_n(x.data(), x.size());
            } else if constexpr (std::is_same_v<X, Binary>) {
                return shoal_value_binary(x.data(), x.size());
            } else if constexpr (std::is_same_v<X, Timestamp>) {
                return shoal_value_timestamp(x.seconds, x.nanos);
            } else if constexpr (std::is_same_v<X, Link>) {
                return shoal_value_link(x.class_name.c_str(), x.key);
            } else {
                return shoal_value_null();
            }
        },
        v.variant());
}

/// A copy of a C value.
inline Value from_c(const shoal_value_t &c) {
    switch (c.kind) {
    case SHOAL_VALUE_NULL:
        return Value();
    case SHOAL_VALUE_BOOL:
        return Value(c.data.boolean);
    case SHOAL_VALUE_INT:
        return Value(c.data.integer);
    case SHOAL_VALUE_FLOAT:
        return Value(c.data.fnum);
    case SHOAL_VALUE_DOUBLE:
        return Value(c.data.dnum);
    case SHOAL_VALUE_STRING:
        return Value(c.data.string.data ? std::string(c.data.string.data, c.data.string.size) : std::string());
    case SHOAL_VALUE_BINARY: {
        const uint8_t *p = c.data.binary.data;
        return Value(p ? Binary(p, p + c.data.binary.size) : Binary());
    }
    case SHOAL_VALUE_TIMESTAMP:
        return Value(Timestamp{c.data.timestamp.seconds, c.data.timestamp.nanos});
    case SHOAL_VALUE_LINK:
        return Value(Link{c.data.link.class_name ? c.data.link.class_name : "", c.data.link.key});
    default:
        throw Error(SHOAL_ERR_INTERNAL, SHOAL_ERR_CATEGORY_INTERNAL,
                    "unknown shoal_value_t kind " + std::to_string(c.kind));
    }
}

/// Runs `call(shoal_value_t *out)`; returns the value it filled in and frees the C value.
template <typename F>
Value read_value(F &&call) {
    shoal_value_t out;
    std::memset(&out, 0, sizeof out);
    check(call(&out));
    struct Free {
        shoal_value_t *v;
        ~Free() { shoal_value_free(v); }
    } guard{&out};
    return from_c(out);
}

/// The iterator of List and Results: an input iterator over the elements at indices
/// [0, size) (the size read when the loop begins), each read with get(i) when first
/// dereferenced. `*it` is a reference to the element the iterator holds, so that
/// `for (auto &x : results)` binds; it is valid until the iterator moves (move it out to keep
/// it). Copying an iterator copies its position, not the element it holds.
template <typename Container, typename Element>
class IndexIterator {
public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Element;
    using difference_type = std::ptrdiff_t;
    using pointer = Element *;
    using reference = Element &;

    IndexIterator() noexcept = default;
    IndexIterator(const Container *container, size_t index) noexcept : container_(container), index_(index) {}
    IndexIterator(const IndexIterator &other) noexcept : container_(other.container_), index_(other.index_) {}
    IndexIterator &operator=(const IndexIterator &other) noexcept {
        container_ = other.container_;
        index_ = other.index_;
        current_.reset();
        return *this;
    }

    reference operator*() const {
        if (!current_) current_.emplace(container_->get(index_));
        return *current_;
    }
    pointer operator->() const { return &**this; }
    IndexIterator &operator++() {
        ++index_;
        current_.reset();
        return *this;
    }
    /// Post-increment moves on; the element read before, if any, is not carried over.
    IndexIterator operator++(int) {
        IndexIterator before(*this);
        ++*this;
        return before;
    }
    size_t index() const noexcept { return index_; }

    friend bool operator==(const IndexIterator &a, const IndexIterator &b) noexcept {
        return a.container_ == b.container_ && a.index_ == b.index_;
    }
    friend bool operator!=(const IndexIterator &a, const IndexIterator &b) noexcept { return !(a == b); }

private:
    const Container *container_ = nullptr;
    size_t index_ = 0;
    mutable std::optional<Element> current_;
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Schema and configuration

/// Property flags, to combine with |.
namespace property {
inline constexpr uint32_t none = 0;
inline constexpr uint32_t nullable = SHOAL_PROPERTY_NULLABLE;
inline constexpr uint32_t indexed = SHOAL_PROPERTY_INDEXED;
inline constexpr uint32_t list = SHOAL_PROPERTY_LIST;
}  // namespace property

class Schema : public Handle<shoal_schema_t> {
public:
    using Handle::Handle;
    /// An empty schema (shoal_schema_new).
    static Schema create() { return Schema(detail::check(shoal_schema_new())); }
    static Schema from_json(StringArg json) {
        return Schema(detail::check(shoal_schema_from_json(json.c_str())));
    }
    Schema clone() const { return Schema(clone_raw()); }

    Schema &add_class(StringArg name, std::optional<std::string_view> primary_key = std::nullopt) {
        detail::check(shoal_schema_add_class(checked(), name.c_str(), detail::OptionalCString(primary_key).get()));
        return *this;
    }
    /// `flags`: shoal::property::nullable | indexed | list; `link_target` for links only.
    Schema &add_property(StringArg class_name, StringArg name, PropertyType type,
                         uint32_t flags = property::none,
                         std::optional<std::string_view> link_target = std::nullopt) {
        detail::check(shoal_schema_add_property(checked(), class_name.c_str(), name.c_str(),
                                                static_cast<int32_t>(type), flags,
                                                detail::OptionalCString(link_target).get()));
        return *this;
    }
    std::string to_json() const { return detail::take_string(shoal_schema_to_json(checked())); }
};

class SyncConfig;

/// A scheduler the app drives (shoal_scheduler_t): the change notifications and async
/// completions of realms opened with a config that has it (Config::set_scheduler) wait in its
/// queue; `notify()` runs on a library thread when the queue gets work and must only wake the
/// app's loop; perform_work() then runs the work on the calling (the app's) thread.
class Scheduler : public Handle<shoal_scheduler_t> {
public:
    using Handle::Handle;
    static Scheduler create(std::function<void()> notify);
    Scheduler clone() const { return Scheduler(clone_raw()); }
    /// Runs the waiting work here, in posting order; returns how many pieces ran.
    size_t perform_work() {
        size_t ran = 0;
        detail::check(shoal_scheduler_perform_work(checked(), &ran));
        return ran;
    }
};

class Config : public Handle<shoal_config_t> {
public:
    using Handle::Handle;
    /// A configuration of the realm file at `path` (shoal_config_new).
    static Config create(StringArg path) { return Config(detail::check(shoal_config_new(path.c_str()))); }
    /// Opens the file at `path` read-only and unsynced (e.g. a client reset's backup), with the
    /// file's own schema; `key` is its 64-byte encryption key, or empty.
    static Config for_recovery(StringArg path, const std::vector<uint8_t> &key = {}) {
        return Config(detail::check(
            shoal_config_for_recovery(path.c_str(), key.empty() ? nullptr : key.data(), key.size(), nullptr)));
    }
    /// As above with an explicit schema.
    static Config for_recovery(StringArg path, const std::vector<uint8_t> &key, const Schema &schema) {
        return Config(detail::check(shoal_config_for_recovery(path.c_str(), key.empty() ? nullptr : key.data(),
                                                              key.size(), schema.checked())));
    }
    Config clone() const { return Config(clone_raw()); }

    std::string path() const { return detail::take_string(shoal_config_get_path(checked())); }
    Config &set_schema(const Schema &schema) {
        detail::check(shoal_config_set_schema(checked(), schema.checked()));
        return *this;
    }
    /// Uses the file's own schema.
    Config &clear_schema() {
        detail::check(shoal_config_set_schema(checked(), nullptr));
        return *this;
    }
    Config &set_schema_version(uint64_t version) {
        detail::check(shoal_config_set_schema_version(checked(), version));
        return *this;
    }
    /// A 64-byte key (anything else: SHOAL_ERR_INVALID_ARGUMENT).
    Config &set_encryption_key(const uint8_t *key, size_t len) {
        detail::check(shoal_config_set_encryption_key(checked(), key, len));
        return *this;
    }
    Config &set_encryption_key(const std::vector<uint8_t> &key) { return set_encryption_key(non_null(key.data()), key.size()); }
#if defined(__cpp_lib_span)
    Config &set_encryption_key(std::span<const uint8_t> key) { return set_encryption_key(non_null(key.data()), key.size()); }
#endif
    Config &clear_encryption_key() {
        detail::check(shoal_config_set_encryption_key(checked(), nullptr, 0));
        return *this;
    }
    Config &set_in_memory(bool in_memory) {
        detail::check(shoal_config_set_in_memory(checked(), in_memory));
        return *this;
    }
    Config &set_read_only(bool read_only) {
        detail::check(shoal_config_set_read_only(checked(), read_only));
        return *this;
    }
    Config &set_delete_if_migration_needed(bool del) {
        detail::check(shoal_config_set_delete_if_migration_needed(checked(), del));
        return *this;
    }
    /// Makes this a synced realm's configuration (the sync configuration is copied).
    Config &set_sync(const SyncConfig &sync);
    /// Delivers notifications and async completions of realms opened with this config on
    /// `scheduler` (during its perform_work()) instead of library threads.
    Config &set_scheduler(const Scheduler &scheduler) {
        detail::check(shoal_config_set_scheduler(checked(), scheduler.checked()));
        return *this;
    }

private:
    // An empty container is a wrong key (INVALID_ARGUMENT), not the C API's NULL "no key".
    static const uint8_t *non_null(const uint8_t *p) noexcept {
        static const uint8_t none = 0;
        return p ? p : &none;
    }
};

// ---------------------------------------------------------------------------------------------
// Realms, objects, lists, results

class Object;
class List;
class Results;
class Session;
class Realm;

/// An asynchronous open under way (Realm::open_async). Destroying it does not cancel the open.
class AsyncOpenTask : public Handle<shoal_async_open_task_t> {
public:
    using Handle::Handle;
    /// Cancels the open: true when it was cancelled (the callback never runs; the realm it
    /// opened is closed and a file it created deleted before this returns), false when it was
    /// too late (the callback ran or is running). May block while the open's thread stops.
    bool cancel() {
        bool cancelled = false;
        detail::check(shoal_async_open_task_cancel(checked(), &cancelled));
        return cancelled;
    }
};

class Realm : public Handle<shoal_realm_t> {
public:
    using Handle::Handle;
    static Realm open(const Config &config) { return Realm(detail::check(shoal_realm_open(config.checked()))); }
    /// Deletes the realm file of `config` (SHOAL_ERR_REALM_IN_USE while it is open).
    static void delete_files(const Config &config) { detail::check(shoal_delete_realm_files(config.checked())); }
    Realm clone() const { return Realm(clone_raw()); }

    void close() { detail::check(shoal_realm_close(checked())); }
    bool is_closed() const { return checked_bool(shoal_realm_is_closed(checked())); }

    void begin_write() { detail::check(shoal_realm_begin_write(checked())); }
    void commit() { detail::check(shoal_realm_commit(checked())); }
    void cancel_write() { detail::check(shoal_realm_cancel_write(checked())); }
    bool is_in_transaction() const { return checked_bool(shoal_realm_is_in_transaction(checked())); }

    /// Runs `f()` (or `f(realm)`) in a write transaction: commits when it returns, cancels the
    /// transaction when it throws (and rethrows). Returns what `f` returns.
    template <typename F>
    auto write(F &&f) {
        begin_write();
        try {
            if constexpr (std::is_void_v<WriteResultT<F>>) {
                call(f);
                commit();
            } else {
                WriteResultT<F> result = call(f);
                commit();
                return result;
            }
        } catch (...) {
            if (shoal_realm_is_in_transaction(get())) shoal_realm_cancel_write(get());
            throw;
        }
    }

    /// Moves to the latest version; returns whether it changed.
    bool refresh() {
        bool changed = false;
        detail::check(shoal_realm_refresh(checked(), &changed));
        return changed;
    }
    bool is_empty() const {
        bool empty = false;
        detail::check(shoal_realm_is_empty(checked(), &empty));
        return empty;
    }
    uint64_t schema_version() const {
        uint64_t v = 0;
        detail::check(shoal_realm_get_schema_version(checked(), &v));
        return v;
    }
    uint64_t version() const {
        uint64_t v = 0;
        detail::check(shoal_realm_version(checked(), &v));
        return v;
    }
    std::string schema_json() const { return detail::take_string(shoal_realm_get_schema_json(checked())); }
    std::string dump_json() const { return detail::take_string(shoal_realm_dump_json(checked())); }
    void compact() { detail::check(shoal_realm_compact(checked())); }

    /// Creates an object of a class without a primary key.
    Object create_object(StringArg class_name);
    /// Creates an object of a class with a primary key.
    Object create_object(StringArg class_name, const Value &primary_key);
    /// The object with this primary key, or std::nullopt.
    std::optional<Object> find_object(StringArg class_name, const Value &primary_key) const;
    /// The object a LINK value points to, or std::nullopt for a null value.
    std::optional<Object> object_from_link(const Value &link) const;
    Results objects(StringArg class_name) const;
    /// Runs a query; `$0`..`$n` in the predicate are bound to `args`.
    Results query(StringArg class_name, StringArg predicate,
                  const std::vector<Value> &args = {}) const;
    /// The realm's sync session (SHOAL_ERR_INVALID_ARGUMENT for a local realm).
    Session session() const;
    /// Calls `callback(version)` on a library thread after every commit that changes the file.
    Token add_change_callback(std::function<void(uint64_t)> callback);

    /// Runs `write(txn)` in a write transaction on a library thread without blocking the caller
    /// (`txn` is a handle of its own, valid during the call; this one stays free), commits when
    /// it returns and cancels the transaction when it throws (nothing is written). Then
    /// `completion(error, version)` runs once on the realm's scheduler (default: the library
    /// thread): std::nullopt and the version after the commit, or the error (what `write`
    /// threw, if it threw a shoal::Error) and 0. Writes of one realm run in the order asked.
    void write_async(std::function<void(Realm &)> write,
                     std::function<void(std::optional<Error>, uint64_t)> completion);
    /// Opens the realm of `config` on a library thread (including the wait for the initial
    /// data a sync config asks for); `callback(realm, error)` runs once on the config's
    /// scheduler (default: the library thread), unless the returned task is cancelled.
    static AsyncOpenTask open_async(const Config &config,
                                    std::function<void(std::optional<Realm>, std::optional<Error>)> callback);

private:
    template <typename F>
    using WriteResult = std::conditional_t<std::is_invocable_v<F &, Realm &>, std::invoke_result<F &, Realm &>,
                                           std::invoke_result<F &>>;
    template <typename F>
    using WriteResultT = typename WriteResult<F>::type;

    template <typename F>
    decltype(auto) call(F &f) {
        if constexpr (std::is_invocable_v<F &, Realm &>)
            return f(*this);
        else
            return f();
    }

    // A bool query that reports failure through the last error rather than its result.
    static bool checked_bool(bool b) {
        if (!b && shoal_get_last_error(nullptr)) detail::throw_last_error();
        return b;
    }
};

class Object : public Handle<shoal_object_t> {
public:
    using Handle::Handle;
    Object clone() const { return Object(clone_raw()); }

    Value get(StringArg property) const {
        return detail::read_value([&](shoal_value_t *out) { return shoal_object_get(checked(), property.c_str(), out); });
    }
    Object &set(StringArg property, const Value &value) {
        shoal_value_t c = detail::to_c(value);
        detail::check(shoal_object_set(checked(), property.c_str(), &c));
        return *this;
    }
    /// Adds `delta` to an INT property (additions from several devices add up under sync).
    Object &add_int(StringArg property, int64_t delta) {
        detail::check(shoal_object_add_int(checked(), property.c_str(), delta));
        return *this;
    }
    /// Deletes the object (shoal_object_delete); the handle then reports OBJECT_DELETED.
    void remove() { detail::check(shoal_object_delete(checked())); }
    /// Whether the object still exists.
    bool is_valid() const {
        bool valid = shoal_object_is_valid(checked());
        if (!valid && shoal_get_last_error(nullptr)) detail::throw_last_error();
        return valid;
    }
    uint64_t key() const {
        uint64_t k = 0;
        detail::check(shoal_object_key(checked(), &k));
        return k;
    }
    std::string class_name() const { return detail::take_string(shoal_object_class_name(checked())); }
    /// A LINK value pointing at this object.
    Value as_link() const {
        return detail::read_value([&](shoal_value_t *out) { return shoal_object_as_link(checked(), out); });
    }
    /// The object a link property points to, or std::nullopt.
    std::optional<Object> linked(StringArg property) const {
        shoal_object_t *o = shoal_object_get_linked(checked(), property.c_str());
        if (!o) {
            if (shoal_get_last_error(nullptr)) detail::throw_last_error();
            return std::nullopt;
        }
        return Object(o);
    }
    List list(StringArg property) const;
    /// Calls `callback` after every commit that changed this object (its initial state first;
    /// `deleted` last), on the realm's scheduler. Destroy the token to stop.
    Token observe(std::function<void(const ObjectChange &)> callback) const;
};

class List : public Handle<shoal_list_t> {
public:
    using Handle::Handle;
    List clone() const { return List(clone_raw()); }

    size_t size() const { return static_cast<size_t>(detail::check_count(shoal_list_size(checked()))); }
    Value get(size_t index) const {
        return detail::read_value([&](shoal_value_t *out) { return shoal_list_get(checked(), index, out); });
    }
    Value operator[](size_t index) const { return get(index); }

    using iterator = detail::IndexIterator<List, Value>;
    using const_iterator = iterator;
    /// `for (const auto &v : list)`: the elements in order (copies; set() changes the list).
    iterator begin() const { return iterator(this, 0); }
    iterator end() const { return iterator(this, size()); }

    std::vector<Value> to_vector() const {
        std::vector<Value> out;
        size_t n = size();
        out.reserve(n);
        for (size_t i = 0; i < n; i++) out.push_back(get(i));
        return out;
    }
    /// Inserts before `index` (`index == size()` appends).
    List &insert(size_t index, const Value &value) {
        shoal_value_t c = detail::to_c(value);
        detail::check(shoal_list_insert(checked(), index, &c));
        return *this;
    }
    List &push_back(const Value &value) { return insert(size(), value); }
    List &set(size_t index, const Value &value) {
        shoal_value_t c = detail::to_c(value);
        detail::check(shoal_list_set(checked(), index, &c));
        return *this;
    }
    List &erase(size_t index) {
        detail::check(shoal_list_erase(checked(), index));
        return *this;
    }
    List &move(size_t from, size_t to) {
        detail::check(shoal_list_move(checked(), from, to));
        return *this;
    }
    List &clear() {
        detail::check(shoal_list_clear(checked()));
        return *this;
    }
    /// Calls `callback` after every commit that changed this list (its initial state first),
    /// on the realm's scheduler. Destroy the token to stop.
    Token observe(std::function<void(const CollectionChanges &)> callback) const;
};

class Results : public Handle<shoal_results_t> {
public:
    using Handle::Handle;
    Results clone() const { return Results(clone_raw()); }
    /// Calls `callback` after every commit that changed these results (their initial state
    /// first), on the realm's scheduler. Destroy the token to stop.
    Token observe(std::function<void(const CollectionChanges &)> callback) const;

    size_t count() const { return static_cast<size_t>(detail::check_count(shoal_results_count(checked()))); }
    Object get(size_t index) const { return Object(detail::check(shoal_results_get(checked(), index))); }
    Object operator[](size_t index) const { return get(index); }

    using iterator = detail::IndexIterator<Results, Object>;
    using const_iterator = iterator;
    /// `for (auto &object : results)`: the objects at indices [0, count()) with count() read
    /// when the loop begins. Results are live: deleting or changing objects inside the loop
    /// can move the others; take to_vector() first to loop over a fixed set.
    iterator begin() const { return iterator(this, 0); }
    iterator end() const { return iterator(this, count()); }

    /// The first object, or std::nullopt when the results are empty.
    std::optional<Object> first() const {
        if (count() == 0) return std::nullopt;
        return get(0);
    }
    /// Every object of the results now (a handle each): a fixed set to loop over while
    /// deleting or changing them.
    std::vector<Object> to_vector() const {
        std::vector<Object> out;
        size_t n = count();
        out.reserve(n);
        for (size_t i = 0; i < n; i++) out.push_back(get(i));
        return out;
    }

    /// New results sorted by `property` (a dotted path through links is allowed).
    Results sort(StringArg property, bool ascending = true) const {
        return Results(detail::check(shoal_results_sort(checked(), property.c_str(), ascending)));
    }
    /// New results sorted by several (property, ascending) keys, the first most significant.
    Results sort_by(const std::vector<std::pair<std::string, bool>> &keys) const {
        std::vector<const char *> names;
        std::unique_ptr<bool[]> ascending(new bool[keys.size() + 1]);
        for (size_t i = 0; i < keys.size(); i++) {
            names.push_back(keys[i].first.c_str());
            ascending[i] = keys[i].second;
        }
        return Results(detail::check(shoal_results_sort_by(checked(), names.data(), ascending.get(), keys.size())));
    }
    Results distinct(StringArg property) const {
        return Results(detail::check(shoal_results_distinct(checked(), property.c_str())));
    }
    /// INT for int properties, DOUBLE for float and double; 0 when empty.
    Value sum(StringArg property) const { return aggregate(shoal_results_sum, property.c_str()); }
    /// Null when empty.
    Value min(StringArg property) const { return aggregate(shoal_results_min, property.c_str()); }
    Value max(StringArg property) const { return aggregate(shoal_results_max, property.c_str()); }
    /// DOUBLE, or null when empty.
    Value average(StringArg property) const { return aggregate(shoal_results_average, property.c_str()); }
    /// Deletes every object in the results (needs a write transaction); returns how many.
    size_t delete_all() { return static_cast<size_t>(detail::check_count(shoal_results_delete_all(checked()))); }

private:
    using AggregateFn = bool (*)(const shoal_results_t *, const char *, shoal_value_t *);
    Value aggregate(AggregateFn fn, const char *property) const {
        return detail::read_value([&](shoal_value_t *out) { return fn(checked(), property, out); });
    }
};

// ---------------------------------------------------------------------------------------------
// App, credentials, users

class Credentials : public Handle<shoal_credentials_t> {
public:
    using Handle::Handle;
    Credentials clone() const { return Credentials(clone_raw()); }
    /// Username and password; `register_account` creates the account on the server.
    static Credentials password(StringArg username, StringArg password,
                                bool register_account = false) {
        return Credentials(
            detail::check(shoal_credentials_password(username.c_str(), password.c_str(), register_account)));
    }
    static Credentials custom(StringArg token, StringArg provider,
                              std::optional<std::string_view> user_info_json = std::nullopt) {
        return Credentials(detail::check(shoal_credentials_custom(
            token.c_str(), provider.c_str(), detail::OptionalCString(user_info_json).get())));
    }
    /// The server's `debug` provider (only when it enables it).
    static Credentials debug(StringArg identity) {
        return Credentials(detail::check(shoal_credentials_debug(identity.c_str())));
    }
    /// Logs in on the device alone: `token` becomes the refresh token.
    static Credentials access_token(StringArg token, StringArg identity) {
        return Credentials(detail::check(shoal_credentials_access_token(token.c_str(), identity.c_str())));
    }
};

class User : public Handle<shoal_user_t> {
public:
    using Handle::Handle;
    User clone() const { return User(clone_raw()); }

    std::string identity() const { return detail::take_string(shoal_user_identity(checked())); }
    /// Whether the user is logged in with an unexpired refresh token.
    bool is_valid() const {
        bool valid = shoal_user_is_valid(checked());
        if (!valid && shoal_get_last_error(nullptr)) detail::throw_last_error();
        return valid;
    }
    bool is_admin() const {
        bool admin = shoal_user_is_admin(checked());
        if (!admin && shoal_get_last_error(nullptr)) detail::throw_last_error();
        return admin;
    }
    std::string auth_url() const { return detail::take_string(shoal_user_auth_url(checked())); }
    /// std::nullopt after logout.
    std::optional<std::string> refresh_token() const {
        return detail::take_optional_string(shoal_user_refresh_token(checked()));
    }
    std::string to_json() const { return detail::take_string(shoal_user_to_json(checked())); }
    /// Logs out at once; the refresh token is revoked on the server in the background.
    void logout() { detail::check(shoal_user_logout(checked())); }
    /// An access token for the realm at `server_path` (e.g. "/<identity>/tasks"); blocks.
    std::string access_token(StringArg server_path) const {
        return detail::take_string(shoal_user_access_token(checked(), server_path.c_str()));
    }
    /// Opens (creating if needed) the user's management realm at /~/__management, whose
    /// PermissionOffer, PermissionOfferResponse and PermissionChange objects share realms.
    Realm open_management_realm() const {
        return Realm(detail::check(shoal_user_open_management_realm(checked())));
    }
    /// The user's sync sessions not stopped by a fatal error (state Error left out), ordered by
    /// local path.
    std::vector<Session> all_sessions() const;
};

class App : public Handle<shoal_app_t> {
public:
    using Handle::Handle;
    /// The app of this process for `base_dir` (shoal_app_new).
    static App create(StringArg base_dir, StringArg app_id) {
        return App(detail::check(shoal_app_new(base_dir.c_str(), app_id.c_str())));
    }
    App clone() const { return App(clone_raw()); }

    /// Logs in at `auth_url` (e.g. "http://127.0.0.1:9080/auth"); blocks.
    User login(const Credentials &credentials, StringArg auth_url) const {
        return User(detail::check(shoal_app_login(checked(), credentials.checked(), auth_url.c_str())));
    }
    /// The only logged-in user, std::nullopt if nobody is logged in (SHOAL_ERR_MULTIPLE_USERS_LOGGED_IN
    /// if several are).
    std::optional<User> current_user() const {
        shoal_user_t *u = shoal_app_current_user(checked());
        if (!u) {
            if (shoal_get_last_error(nullptr)) detail::throw_last_error();
            return std::nullopt;
        }
        return User(u);
    }
    /// The logged-in users, ordered by identity.
    std::vector<User> all_users() const {
        for (;;) {
            size_t n = static_cast<size_t>(detail::check_count(shoal_app_all_users(checked(), nullptr, 0)));
            std::vector<shoal_user_t *> raw(n, nullptr);
            int64_t m = detail::check_count(shoal_app_all_users(checked(), raw.data(), raw.size()));
            std::vector<User> users;
            users.reserve(n);
            for (size_t i = 0; i < n && i < static_cast<size_t>(m); i++) users.emplace_back(raw[i]);
            if (static_cast<size_t>(m) <= n) return users;
            // Someone logged in between the two calls: try again.
        }
    }
    /// The known user with this identity, or std::nullopt.
    std::optional<User> get_user(StringArg identity) const {
        shoal_user_t *u = shoal_app_get_user(checked(), identity.c_str());
        if (!u) {
            if (shoal_get_last_error(nullptr)) detail::throw_last_error();
            return std::nullopt;
        }
        return User(u);
    }
    /// The sync session of the synced realm `config` describes (created if needed).
    Session session(const Config &config) const;
    /// Pauses every sync session of the app and waits until their callbacks have run.
    void stop_sync(std::chrono::milliseconds timeout) const {
        detail::check(shoal_app_stop_sync(checked(), detail::timeout_ms(timeout)));
    }
    uint64_t pending_revocations() const {
        uint64_t n = 0;
        detail::check(shoal_app_pending_revocations(checked(), &n));
        return n;
    }
    /// Moves the realm file at `original_path` aside after a client reset (every realm handle of
    /// it must be released first); returns the backup's path, for Config::for_recovery.
    std::string execute_client_reset(StringArg original_path) {
        return detail::take_string(shoal_app_execute_client_reset(checked(), original_path.c_str()));
    }
};

// ---------------------------------------------------------------------------------------------
// Sync

enum class StopPolicy : int32_t {
    Immediately = SHOAL_STOP_POLICY_IMMEDIATELY,
    LiveIndefinitely = SHOAL_STOP_POLICY_LIVE_INDEFINITELY,
    AfterChangesUploaded = SHOAL_STOP_POLICY_AFTER_CHANGES_UPLOADED,
};

enum class SessionState : int32_t {
    WaitingForAccessToken = SHOAL_SESSION_WAITING_FOR_ACCESS_TOKEN,
    Active = SHOAL_SESSION_ACTIVE,
    Dying = SHOAL_SESSION_DYING,
    Inactive = SHOAL_SESSION_INACTIVE,
    Error = SHOAL_SESSION_ERROR,
};

enum class ConnectionState : int32_t {
    Disconnected = SHOAL_CONNECTION_DISCONNECTED,
    Connecting = SHOAL_CONNECTION_CONNECTING,
    Connected = SHOAL_CONNECTION_CONNECTED,
};

enum class ProgressDirection : int32_t {
    Download = SHOAL_PROGRESS_DOWNLOAD,
    Upload = SHOAL_PROGRESS_UPLOAD,
};

enum class ProgressMode : int32_t {
    CurrentChanges = SHOAL_PROGRESS_CURRENT_CHANGES,
    Indefinitely = SHOAL_PROGRESS_INDEFINITELY,
};

/// An error of a sync session, as handed to the error handler (a copy).
struct SyncError {
    int32_t code = 0;
    int32_t category = 0;
    std::string message;
    /// The session stopped for good (state SessionState::Error); otherwise it retries.
    bool is_fatal = false;
    /// Release every handle of the realm, then App::execute_client_reset(*original_path).
    bool is_client_reset = false;
    std::optional<std::string> original_path;
    std::optional<std::string> backup_path;
    const char *name() const noexcept { return shoal_error_name(code); }
};

class Session : public Handle<shoal_session_t> {
public:
    using Handle::Handle;
    Session clone() const { return Session(clone_raw()); }

    SessionState state() const {
        return static_cast<SessionState>(detail::check_count(shoal_session_state(checked())));
    }
    ConnectionState connection_state() const {
        return static_cast<ConnectionState>(detail::check_count(shoal_session_connection_state(checked())));
    }
    /// `callback(old, new)` on every state change, on the sync callback thread.
    Token add_state_callback(std::function<void(SessionState, SessionState)> callback);
    Token add_connection_callback(std::function<void(ConnectionState, ConnectionState)> callback);
    /// `callback(transferred, transferable)`; complete when transferred >= transferable.
    Token add_progress_callback(ProgressDirection direction, ProgressMode mode,
                                std::function<void(uint64_t, uint64_t)> callback);
    /// Waits until every local change committed before the call is on the server
    /// (SHOAL_ERR_TIMEOUT after `timeout`; milliseconds::max() waits without limit).
    void wait_for_upload(std::chrono::milliseconds timeout = std::chrono::milliseconds::max()) {
        detail::check(shoal_session_wait_for_upload(checked(), detail::timeout_ms(timeout)));
    }
    /// Waits until everything the server had at the call is integrated; Realm::refresh() then.
    void wait_for_download(std::chrono::milliseconds timeout = std::chrono::milliseconds::max()) {
        detail::check(shoal_session_wait_for_download(checked(), detail::timeout_ms(timeout)));
    }
    void pause() { detail::check(shoal_session_pause(checked())); }
    void resume() { detail::check(shoal_session_resume(checked())); }
    /// Answers a token binder's request (from any thread).
    void bind_token(StringArg token) { detail::check(shoal_session_bind_token(checked(), token.c_str())); }
    std::string path() const { return detail::take_string(shoal_session_path(checked())); }
    std::string server_url() const { return detail::take_string(shoal_session_server_url(checked())); }
    User user() const { return User(detail::check(shoal_session_user(checked()))); }
};

class SyncConfig : public Handle<shoal_sync_config_t> {
public:
    using Handle::Handle;
    /// How `user` syncs the realm at `url` ("realm://host:port/~/path"; `~` is the identity).
    static SyncConfig create(const User &user, StringArg url) {
        return SyncConfig(detail::check(shoal_sync_config_new(user.checked(), url.c_str())));
    }
    SyncConfig clone() const { return SyncConfig(clone_raw()); }

    /// Gets every error of the session (a clone of the session, and a copy of the error), on the
    /// sync callback thread. An empty function removes the handler.
    SyncConfig &set_error_handler(std::function<void(Session, SyncError)> handler);
    SyncConfig &set_stop_policy(StopPolicy policy) {
        detail::check(shoal_sync_config_set_stop_policy(checked(), static_cast<int32_t>(policy)));
        return *this;
    }
    /// Makes the first open wait (at most `timeout`) until the server's data is downloaded.
    SyncConfig &set_wait_for_initial_data(bool wait,
                                          std::chrono::milliseconds timeout = std::chrono::milliseconds::max()) {
        detail::check(shoal_sync_config_set_wait_for_initial_data(checked(), wait, detail::timeout_ms(timeout)));
        return *this;
    }
    /// Supplies access tokens: `binder(session, server_path)` must answer, now or later and
    /// from any thread, with session.bind_token(token). An empty function removes the binder.
    SyncConfig &set_token_binder(std::function<void(Session, const std::string &)> binder);
    /// Names the local file `name` instead of the URL's last segment (SHOAL_ERR_INVALID_ARGUMENT
    /// for an empty name, "." or ".."); the configuration is unchanged after an error.
    SyncConfig &set_name(StringArg name) {
        detail::check(shoal_sync_config_set_name(checked(), name.c_str()));
        return *this;
    }
    /// Keeps the local file under `directory` (created if missing) instead of the app's sync
    /// root: <directory>/<identity>/<server path>. SHOAL_ERR_INVALID_ARGUMENT for an empty path,
    /// a file, or a directory that cannot be created or written to.
    SyncConfig &set_directory(StringArg directory) {
        detail::check(shoal_sync_config_set_directory(checked(), directory.c_str()));
        return *this;
    }
    /// The root the local file lives under (absolute, canonical).
    std::string directory() const { return detail::take_string(shoal_sync_config_directory(checked())); }
    std::string path() const { return detail::take_string(shoal_sync_config_path(checked())); }
    std::string server_url() const { return detail::take_string(shoal_sync_config_server_url(checked())); }
    std::string server_path() const { return detail::take_string(shoal_sync_config_server_path(checked())); }
};

/// Sets the error handler every SyncConfig made from now on starts with; an empty function
/// restores the built-in one, which logs ("Session Error[<url>]: <message>"). Process-wide;
/// configurations made earlier keep theirs.
inline void set_default_sync_error_handler(std::function<void(Session, SyncError)> handler);

// ---------------------------------------------------------------------------------------------
// Callback trampolines: they never let an exception reach the library.

namespace detail {

using ChangeFn = std::function<void(uint64_t)>;
using StateFn = std::function<void(SessionState, SessionState)>;
using ConnectionFn = std::function<void(ConnectionState, ConnectionState)>;
using ProgressFn = std::function<void(uint64_t, uint64_t)>;
using SyncErrorFn = std::function<void(Session, SyncError)>;
using TokenBinderFn = std::function<void(Session, const std::string &)>;

using CollectionFn = std::function<void(const CollectionChanges &)>;
using ObjectChangeFn = std::function<void(const ObjectChange &)>;

inline void on_collection_changes(void *userdata, const shoal_collection_changes_t *c) noexcept {
    try {
        CollectionChanges out;
        out.version = c->version;
        out.initial = c->initial;
        out.collection_deleted = c->collection_deleted;
        out.deletions.assign(c->deletions, c->deletions + c->num_deletions);
        out.insertions.assign(c->insertions, c->insertions + c->num_insertions);
        out.modifications.assign(c->modifications, c->modifications + c->num_modifications);
        out.modifications_old.assign(c->modifications_old, c->modifications_old + c->num_modifications);
        for (size_t i = 0; i < c->num_moves; i++) out.moves.emplace_back(c->moves[i].from, c->moves[i].to);
        (*static_cast<CollectionFn *>(userdata))(out);
    } catch (...) {
        report_callback_exception("collection change");
    }
}

inline void on_object_changes(void *userdata, const shoal_object_changes_t *c) noexcept {
    try {
        ObjectChange out;
        out.version = c->version;
        out.initial = c->initial;
        out.deleted = c->deleted;
        for (size_t i = 0; i < c->num_changed; i++) out.changed.emplace_back(c->changed_names[i]);
        (*static_cast<ObjectChangeFn *>(userdata))(out);
    } catch (...) {
        report_callback_exception("object change");
    }
}

inline void on_change(void *userdata, uint64_t version) noexcept {
    try {
        (*static_cast<ChangeFn *>(userdata))(version);
    } catch (...) {
        report_callback_exception("change");
    }
}

inline void on_session_state(void *userdata, int32_t old_state, int32_t new_state) noexcept {
    try {
        (*static_cast<StateFn *>(userdata))(static_cast<SessionState>(old_state), static_cast<SessionState>(new_state));
    } catch (...) {
        report_callback_exception("session state");
    }
}

inline void on_connection_state(void *userdata, int32_t old_state, int32_t new_state) noexcept {
    try {
        (*static_cast<ConnectionFn *>(userdata))(static_cast<ConnectionState>(old_state),
                                                 static_cast<ConnectionState>(new_state));
    } catch (...) {
        report_callback_exception("connection state");
    }
}

inline void on_progress(void *userdata, uint64_t transferred, uint64_t transferable) noexcept {
    try {
        (*static_cast<ProgressFn *>(userdata))(transferred, transferable);
    } catch (...) {
        report_callback_exception("progress");
    }
}

inline void on_sync_error(void *userdata, shoal_session_t *session, const shoal_sync_error_t *error) noexcept {
    try {
        SyncError e;
        e.code = error->code;
        e.category = error->category;
        e.message = error->message ? error->message : "";
        e.is_fatal = error->is_fatal;
        e.is_client_reset = error->is_client_reset;
        if (error->original_path) e.original_path = error->original_path;
        if (error->backup_path) e.backup_path = error->backup_path;
        Session s(static_cast<shoal_session_t *>(shoal_clone(session)));
        (*static_cast<SyncErrorFn *>(userdata))(std::move(s), std::move(e));
    } catch (...) {
        report_callback_exception("sync error");
    }
}

inline void on_token_needed(void *userdata, shoal_session_t *session, const char *server_path) noexcept {
    try {
        Session s(static_cast<shoal_session_t *>(shoal_clone(session)));
        (*static_cast<TokenBinderFn *>(userdata))(std::move(s), server_path ? server_path : "");
    } catch (...) {
        report_callback_exception("token binder");
    }
}

inline void on_notify(void *userdata) noexcept {
    try {
        (*static_cast<std::function<void()> *>(userdata))();
    } catch (...) {
        report_callback_exception("scheduler notify");
    }
}

/// An asynchronous write's two functions, and what the first one threw.
struct WriteJob {
    std::function<void(Realm &)> write;
    std::function<void(std::optional<Error>, uint64_t)> completion;
    std::exception_ptr thrown;
};

inline bool on_write_async(void *userdata, shoal_realm_t *realm) noexcept;
inline void on_write_done(void *userdata, const shoal_error_t *error, uint64_t version) noexcept {
    auto *job = static_cast<WriteJob *>(userdata);
    try {
        std::optional<Error> e;
        if (error) e.emplace(error->code, error->category, error->message ? error->message : "", error->path ? error->path : "");
        if (job->thrown) {
            try {
                std::rethrow_exception(job->thrown);
            } catch (const Error &thrown) {
                e = thrown;
            } catch (const std::exception &thrown) {
                if (e) e.emplace(e->code(), e->category(), std::string("the write function threw: ") + thrown.what());
            } catch (...) {
            }
        }
        job->completion(std::move(e), error ? 0 : version);
    } catch (...) {
        report_callback_exception("write completion");
    }
}

using OpenFn = std::function<void(std::optional<Realm>, std::optional<Error>)>;
inline void on_opened(void *userdata, shoal_realm_t *realm, const shoal_error_t *error) noexcept;

/// Boxes `fn` on the heap and hands it to `reg(trampoline, box, free_box)`. The library owns the
/// box from then on (it frees it even when the registration fails).
template <typename Fn, typename Trampoline, typename Register>
auto register_callback(Fn &&fn, Trampoline trampoline, Register &&reg) {
    using F = std::decay_t<Fn>;
    if (!fn) return reg(nullptr, nullptr, nullptr);  // the library reports or removes
    return reg(trampoline, new F(std::forward<Fn>(fn)), &free_box<F>);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Definitions that need every class

inline Config &Config::set_sync(const SyncConfig &sync) {
    detail::check(shoal_config_set_sync(checked(), sync.checked()));
    return *this;
}

inline Object Realm::create_object(StringArg class_name) {
    return Object(detail::check(shoal_object_create(checked(), class_name.c_str(), nullptr)));
}

inline Object Realm::create_object(StringArg class_name, const Value &primary_key) {
    shoal_value_t pk = detail::to_c(primary_key);
    return Object(detail::check(shoal_object_create(checked(), class_name.c_str(), &pk)));
}

inline std::optional<Object> Realm::find_object(StringArg class_name, const Value &primary_key) const {
    shoal_value_t pk = detail::to_c(primary_key);
    shoal_object_t *o = shoal_object_find(checked(), class_name.c_str(), &pk);
    if (!o) {
        if (shoal_get_last_error(nullptr)) detail::throw_last_error();
        return std::nullopt;
    }
    return Object(o);
}

inline std::optional<Object> Realm::object_from_link(const Value &link) const {
    shoal_value_t c = detail::to_c(link);
    shoal_object_t *o = shoal_object_from_link(checked(), &c);
    if (!o) {
        if (shoal_get_last_error(nullptr)) detail::throw_last_error();
        return std::nullopt;
    }
    return Object(o);
}

inline Results Realm::objects(StringArg class_name) const {
    return Results(detail::check(shoal_realm_objects(checked(), class_name.c_str())));
}

inline Results Realm::query(StringArg class_name, StringArg predicate,
                            const std::vector<Value> &args) const {
    std::vector<shoal_value_t> c;
    c.reserve(args.size());
    for (const Value &v : args) c.push_back(detail::to_c(v));
    return Results(
        detail::check(shoal_realm_query(checked(), class_name.c_str(), predicate.c_str(), c.empty() ? nullptr : c.data(), c.size())));
}

inline Session Realm::session() const { return Session(detail::check(shoal_realm_get_session(checked()))); }

inline Scheduler Scheduler::create(std::function<void()> notify) {
    return Scheduler(detail::check(detail::register_callback(
        std::move(notify), &detail::on_notify, [](shoal_scheduler_notify_fn_t fn, void *ud, shoal_free_userdata_fn_t free) {
            return shoal_scheduler_new(fn, ud, free);
        })));
}

inline bool detail::on_write_async(void *userdata, shoal_realm_t *realm) noexcept {
    auto *job = static_cast<WriteJob *>(userdata);
    try {
        Realm txn(static_cast<shoal_realm_t *>(detail::check(shoal_clone(realm))));
        job->write(txn);
        return true;
    } catch (...) {
        job->thrown = std::current_exception();
        return false;
    }
}

inline void detail::on_opened(void *userdata, shoal_realm_t *realm, const shoal_error_t *error) noexcept {
    try {
        std::optional<Realm> r;
        if (realm) r.emplace(realm);  // a new handle: ours
        std::optional<Error> e;
        if (error) e.emplace(error->code, error->category, error->message ? error->message : "", error->path ? error->path : "");
        (*static_cast<OpenFn *>(userdata))(std::move(r), std::move(e));
    } catch (...) {
        report_callback_exception("open");
    }
}

inline void Realm::write_async(std::function<void(Realm &)> write,
                               std::function<void(std::optional<Error>, uint64_t)> completion) {
    if (!write || !completion)
        throw Error(SHOAL_ERR_INVALID_ARGUMENT, SHOAL_ERR_CATEGORY_LOGIC, "write_async needs both functions");
    shoal_realm_t *r = checked();
    auto *job = new detail::WriteJob{std::move(write), std::move(completion), nullptr};
    // The library owns the job from here: it frees it even when the call fails.
    detail::check(shoal_realm_write_async(r, &detail::on_write_async, &detail::on_write_done, job,
                                          &detail::free_box<detail::WriteJob>));
}

inline AsyncOpenTask Realm::open_async(const Config &config,
                                       std::function<void(std::optional<Realm>, std::optional<Error>)> callback) {
    const shoal_config_t *c = config.checked();
    return AsyncOpenTask(detail::check(detail::register_callback(
        std::move(callback), &detail::on_opened, [c](shoal_open_fn_t fn, void *ud, shoal_free_userdata_fn_t free) {
            return shoal_realm_open_async(c, fn, ud, free);
        })));
}

inline Token Realm::add_change_callback(std::function<void(uint64_t)> callback) {
    shoal_realm_t *r = checked();
    return Token(detail::check(detail::register_callback(
        std::move(callback), &detail::on_change, [r](shoal_change_fn_t fn, void *ud, shoal_free_userdata_fn_t free) {
            return shoal_realm_add_change_callback(r, fn, ud, free);
        })));
}

inline Token Results::observe(std::function<void(const CollectionChanges &)> callback) const {
    const shoal_results_t *r = checked();
    return Token(detail::check(detail::register_callback(
        std::move(callback), &detail::on_collection_changes,
        [r](shoal_collection_change_fn_t fn, void *ud, shoal_free_userdata_fn_t free) {
            return shoal_results_observe(r, fn, ud, free);
        })));
}

inline Token List::observe(std::function<void(const CollectionChanges &)> callback) const {
    const shoal_list_t *l = checked();
    return Token(detail::check(detail::register_callback(
        std::move(callback), &detail::on_collection_changes,
        [l](shoal_collection_change_fn_t fn, void *ud, shoal_free_userdata_fn_t free) {
            return shoal_list_observe(l, fn, ud, free);
        })));
}

inline Token Object::observe(std::function<void(const ObjectChange &)> callback) const {
    const shoal_object_t *o = checked();
    return Token(detail::check(detail::register_callback(
        std::move(callback), &detail::on_object_changes,
        [o](shoal_object_change_fn_t fn, void *ud, shoal_free_userdata_fn_t free) {
            return shoal_object_observe(o, fn, ud, free);
        })));
}

inline List Object::list(StringArg property) const {
    return List(detail::check(shoal_object_get_list(checked(), property.c_str())));
}

inline Session App::session(const Config &config) const {
    return Session(detail::check(shoal_app_get_session(checked(), config.checked())));
}

inline Token Session::add_state_callback(std::function<void(SessionState, SessionState)> callback) {
    shoal_session_t *s = checked();
    return Token(detail::check(detail::register_callback(
        std::move(callback), &detail::on_session_state,
        [s](shoal_session_state_fn_t fn, void *ud, shoal_free_userdata_fn_t free) {
            return shoal_session_add_state_callback(s, fn, ud, free);
        })));
}

inline Token Session::add_connection_callback(std::function<void(ConnectionState, ConnectionState)> callback) {
    shoal_session_t *s = checked();
    return Token(detail::check(detail::register_callback(
        std::move(callback), &detail::on_connection_state,
        [s](shoal_connection_state_fn_t fn, void *ud, shoal_free_userdata_fn_t free) {
            return shoal_session_add_connection_callback(s, fn, ud, free);
        })));
}

inline Token Session::add_progress_callback(ProgressDirection direction, ProgressMode mode,
                                            std::function<void(uint64_t, uint64_t)> callback) {
    shoal_session_t *s = checked();
    return Token(detail::check(detail::register_callback(
        std::move(callback), &detail::on_progress,
        [s, direction, mode](shoal_progress_fn_t fn, void *ud, shoal_free_userdata_fn_t free) {
            return shoal_session_add_progress_callback(s, static_cast<int32_t>(direction), static_cast<int32_t>(mode),
                                                       fn, ud, free);
        })));
}

inline SyncConfig &SyncConfig::set_error_handler(std::function<void(Session, SyncError)> handler) {
    shoal_sync_config_t *sc = checked();
    detail::check(detail::register_callback(std::move(handler), &detail::on_sync_error,
                                            [sc](shoal_sync_error_fn_t fn, void *ud, shoal_free_userdata_fn_t free) {
                                                return shoal_sync_config_set_error_handler(sc, fn, ud, free);
                                            }));
    return *this;
}

inline std::vector<Session> User::all_sessions() const {
    for (;;) {
        size_t n = static_cast<size_t>(detail::check_count(shoal_user_all_sessions(checked(), nullptr, 0)));
        std::vector<shoal_session_t *> raw(n, nullptr);
        int64_t m = detail::check_count(shoal_user_all_sessions(checked(), raw.data(), raw.size()));
        std::vector<Session> sessions;
        sessions.reserve(n);
        for (size_t i = 0; i < n && i < static_cast<size_t>(m); i++) sessions.emplace_back(raw[i]);
        if (static_cast<size_t>(m) <= n) return sessions;
        // A session appeared between the two calls: try again.
    }
}

inline void set_default_sync_error_handler(std::function<void(Session, SyncError)> handler) {
    detail::check(detail::register_callback(std::move(handler), &detail::on_sync_error,
                                            [](shoal_sync_error_fn_t fn, void *ud, shoal_free_userdata_fn_t free) {
                                                return shoal_set_default_sync_error_handler(fn, ud, free);
                                            }));
}

inline SyncConfig &SyncConfig::set_token_binder(std::function<void(Session, const std::string &)> binder) {
    shoal_sync_config_t *sc = checked();
    detail::check(detail::register_callback(std::move(binder), &detail::on_token_needed,
                                            [sc](shoal_token_binder_fn_t fn, void *ud, shoal_free_userdata_fn_t free) {
                                                return shoal_sync_config_set_token_binder(sc, fn, ud, free);
                                            }));
    return *this;
}

}  // namespace shoal

#endif  // SHOAL_HPP

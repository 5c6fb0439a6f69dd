// count.cpp: a C++17 program built with CMake's find_package(Shoal) (see CMakeLists.txt).
// Opens an in-memory realm, adds numbers, sums them with a range-for and an aggregate, counts
// some with a query; prints "count.cpp: ok" on success.
#include <shoal.hpp>

#include <cstdio>

int main() {
    try {
        auto config = shoal::Config::create("count-in-memory");
        config.set_in_memory(true).set_schema(shoal::Schema::create().add_class("N").add_property(
            "N", "value", shoal::PropertyType::Int));
        auto realm = shoal::Realm::open(config);
        realm.write([&] {
            for (int i = 1; i <= 10; i++) realm.create_object("N").set("value", i);
        });
        int64_t sum = 0;
        for (const auto &n : realm.objects("N"))
            if (n.get("value").as_int() > 5) sum += n.get("value").as_int();
        if (sum != 40 || realm.objects("N").sum("value") != shoal::Value(55) ||
            realm.query("N", "value <= $0", {3}).count() != 3) {
            std::fprintf(stderr, "count.cpp: sum %lld\n", static_cast<long long>(sum));
            return 1;
        }
    } catch (const shoal::Error &e) {
        std::fprintf(stderr, "count.cpp: %s\n", e.what());
        return 1;
    }
    std::printf("count.cpp: ok (Shoal %s, header %s)\n", shoal::version().c_str(), SHOAL_VERSION);
    return 0;
}

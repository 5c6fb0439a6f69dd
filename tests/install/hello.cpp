// hello.cpp: a C++17 program as a user writes it against an installed Shoal
// (scripts/install.sh), through the header-only binding installed beside the C header:
//   c++ -std=c++17 hello.cpp $(pkg-config --cflags --libs shoal) -o hello && ./hello DIR
// Opens a realm in DIR, writes, then reads with range-for over results and a list, and
// string_view arguments; prints "hello.cpp: ok" on success. Run by scripts/check_install.sh.
#include <shoal.hpp>

#include <cstdio>
#include <string>
#include <string_view>

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    try {
        auto config = shoal::Config::create(std::string(argv[1]) + "/tasks.realm");
        config.set_schema(shoal::Schema::from_json(R"({"classes":[{"name":"Task","primary_key":"id",
            "properties":[{"name":"id","type":"int"},{"name":"title","type":"string"},
            {"name":"done","type":"bool"},{"name":"tags","type":"string","list":true}]}]})"));
        auto realm = shoal::Realm::open(config);
        realm.write([&] {
            for (int64_t id = 1; id <= 4; id++) {
                auto task = realm.create_object("Task", id);
                task.set("title", "task " + std::to_string(id)).set("done", id % 2 == 0);
                task.list("tags").push_back("home").push_back(id > 2 ? "late" : "early");
            }
        });

        constexpr std::string_view predicate = "done == $0 SORT(id DESC)";
        std::string titles;
        for (auto &task : realm.query("Task", predicate, {true})) titles += task.get("title").as_string() + ";";
        std::string tags;
        auto first = realm.objects("Task").sort("id").first();
        for (const auto &tag : first->list("tags")) tags += tag.as_string() + ";";
        if (titles != "task 4;task 2;" || tags != "home;early;") {
            std::fprintf(stderr, "hello.cpp: read %s and %s\n", titles.c_str(), tags.c_str());
            return 1;
        }
    } catch (const shoal::Error &e) {
        std::fprintf(stderr, "hello.cpp: %s\n", e.what());
        return 1;
    }
    std::printf("hello.cpp: ok (Shoal %s)\n", shoal::version().c_str());
    return 0;
}

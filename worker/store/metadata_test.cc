#include "worker/store/metadata.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>

namespace kiln::store {
namespace {

class MetadataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kiln-metadata-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto db = Metadata::open(dir_.string());
    ASSERT_TRUE(db) << db.error().to_string();
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  void reopen() {
    db_.reset();
    auto db = Metadata::open(dir_.string());
    ASSERT_TRUE(db) << db.error().to_string();
    db_ = std::move(*db);
  }
  static ResultRecord at(std::int64_t t, std::string parent = "") {
    ResultRecord r;
    r.parent = std::move(parent);
    r.created_us = r.last_used_us = t;
    return r;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Metadata> db_;
};

TEST_F(MetadataTest, RecordsRoundTripAndSurviveReopen) {
  ResultRecord r = at(100);
  r.size_bytes = 4096;
  r.build_ms = 1234;
  r.layered_on = "";
  ASSERT_TRUE(db_->add_result("a", r));
  ASSERT_TRUE(db_->add_result("b", at(200, "a")));
  reopen();
  auto a = db_->get_result("a");
  ASSERT_TRUE(a && *a);
  EXPECT_EQ((*a)->size_bytes, 4096u);
  EXPECT_EQ((*a)->build_ms, 1234);
  EXPECT_EQ((*a)->children, 1u);
  EXPECT_EQ((*a)->last_used_us, 200);  // building a child uses the parent
  EXPECT_EQ(db_->result_count(), 2u);
  auto kids = db_->children("a");
  ASSERT_TRUE(kids);
  EXPECT_EQ(*kids, std::vector<std::string>{"b"});
}

// A short-lived process (a cached `kiln build`) opens the database, writes a
// little and closes it, again and again: what it wrote survives, and the
// write-ahead logs kept at open do not pile up.
TEST_F(MetadataTest, ManyShortOpensKeepEveryWriteAndFewLogs) {
  ASSERT_TRUE(db_->add_result("a", at(1)));
  for (std::int64_t i = 2; i <= 40; ++i) {
    reopen();
    ASSERT_TRUE(db_->mark_used("a", i));
    std::size_t logs = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_))
      if (e.path().extension() == ".log") ++logs;
    EXPECT_LE(logs, 10u) << "after open " << i;
  }
  reopen();
  auto a = db_->get_result("a");
  ASSERT_TRUE(a && *a);
  EXPECT_EQ((*a)->last_used_us, 40);
}

TEST_F(MetadataTest, AddRejectsDuplicatesAndUnknownParents) {
  ASSERT_TRUE(db_->add_result("a", at(1)));
  auto dup = db_->add_result("a", at(2));
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().kind(), ErrorKind::kAlreadyExists);
  auto orphan = db_->add_result("x", at(3, "missing"));
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.error().kind(), ErrorKind::kNotFound);
}

TEST_F(MetadataTest, LruListsOnlyLeavesOldestFirst) {
  ASSERT_TRUE(db_->add_result("root", at(10)));
  ASSERT_TRUE(db_->add_result("leaf1", at(30, "root")));
  ASSERT_TRUE(db_->add_result("leaf2", at(20, "root")));
  ASSERT_TRUE(db_->add_result("lone", at(25)));
  auto leaves = db_->lru_leaves(1000, 10);
  ASSERT_TRUE(leaves);
  EXPECT_EQ(*leaves, (std::vector<std::string>{"leaf2", "lone", "leaf1"}));
  // `before` is strict and `limit` caps the answer.
  EXPECT_EQ(*db_->lru_leaves(25, 10), std::vector<std::string>{"leaf2"});
  EXPECT_EQ(*db_->lru_leaves(1000, 1), std::vector<std::string>{"leaf2"});
  ASSERT_TRUE(db_->mark_used("leaf2", 500));
  EXPECT_EQ(*db_->lru_leaves(1000, 10), (std::vector<std::string>{"lone", "leaf1", "leaf2"}));
}

TEST_F(MetadataTest, RemovingTheLastChildMakesTheParentALeaf) {
  ASSERT_TRUE(db_->add_result("p", at(10)));
  ASSERT_TRUE(db_->add_result("c", at(20, "p")));
  EXPECT_EQ(*db_->lru_leaves(1000, 10), std::vector<std::string>{"c"});
  ASSERT_TRUE(db_->remove_result("c"));
  EXPECT_EQ(*db_->lru_leaves(1000, 10), std::vector<std::string>{"p"});
  EXPECT_EQ((*db_->get_result("p"))->children, 0u);
  EXPECT_EQ(db_->result_count(), 1u);
  EXPECT_TRUE(db_->remove_result("never-there"));
}

TEST_F(MetadataTest, LruFindsLeavesOlderThanTheLastOneFound) {
  // Lookups seek from the last oldest leaf found; a parent that becomes a
  // leaf again keeps its older time and must still be found.
  ASSERT_TRUE(db_->add_result("p", at(10)));
  ASSERT_TRUE(db_->add_result("c", at(20, "p")));
  ASSERT_TRUE(db_->mark_used("c", 40));
  EXPECT_EQ(*db_->lru_leaves(1000, 1), std::vector<std::string>{"c"});
  ASSERT_TRUE(db_->remove_result("c"));
  EXPECT_EQ(*db_->lru_leaves(1000, 1), std::vector<std::string>{"p"});
  ASSERT_TRUE(db_->add_result("old", at(5)));
  EXPECT_EQ(*db_->lru_leaves(1000, 10), (std::vector<std::string>{"old", "p"}));
}

TEST_F(MetadataTest, RemovingAParentTurnsChildrenIntoRoots) {
  ASSERT_TRUE(db_->add_result("p", at(10)));
  ASSERT_TRUE(db_->add_result("c", at(20, "p")));
  ASSERT_TRUE(db_->remove_result("p"));
  auto c = db_->get_result("c");
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->parent, "");
  EXPECT_TRUE(db_->children("p")->empty());
  EXPECT_EQ(*db_->repair_indexes(), 0);  // still consistent
}

TEST_F(MetadataTest, CachesAndCountersPersist) {
  ASSERT_TRUE(db_->put_cache("opam", CacheRecord{3, 1, 2}));
  ASSERT_TRUE(db_->add_lookups(2, 1));
  ASSERT_TRUE(db_->add_lookups(1, 0));
  reopen();
  auto c = db_->get_cache("opam");
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->generation, 3u);
  auto counters = db_->lookup_counters();
  ASSERT_TRUE(counters);
  EXPECT_EQ(counters->hits, 3u);
  EXPECT_EQ(counters->misses, 1u);
  ASSERT_TRUE(db_->remove_cache("opam"));
  EXPECT_FALSE(*db_->get_cache("opam"));
}

TEST_F(MetadataTest, RepairRebuildsDamagedIndexes) {
  ASSERT_TRUE(db_->add_result("p", at(10)));
  ASSERT_TRUE(db_->add_result("c", at(20, "p")));
  EXPECT_EQ(*db_->repair_indexes(), 0);
  db_.reset();
  {
    // Damage the derived keys behind the API's back: drop c's leaf entry and p's child link.
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_.string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    std::vector<std::string> doomed;
    for (it->Seek("c/"); it->Valid() && it->key().starts_with("c/"); it->Next())
      doomed.push_back(it->key().ToString());
    for (it->Seek("l/"); it->Valid() && it->key().starts_with("l/"); it->Next())
      doomed.push_back(it->key().ToString());
    it.reset();
    ASSERT_EQ(doomed.size(), 2u);
    for (const auto& k : doomed) ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), k).ok());
  }
  reopen();
  EXPECT_TRUE(db_->lru_leaves(1000, 10)->empty());
  EXPECT_EQ(*db_->repair_indexes(), 2);
  EXPECT_EQ(*db_->lru_leaves(1000, 10), std::vector<std::string>{"c"});
  EXPECT_EQ(*db_->children("p"), std::vector<std::string>{"c"});
}

}  // namespace
}  // namespace kiln::store

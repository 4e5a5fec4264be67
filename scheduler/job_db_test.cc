// The JobDb contract, run against both implementations (RocksDB on disk and
// memory): staged writes are invisible until commit, logs read back by byte
// offset across chunks, reopening sees what was committed and nothing else.
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "scheduler/memory_job_db.h"
#include "scheduler/rocksdb_job_db.h"
#include "tests/support/temp_dir.h"

namespace kiln::scheduler {
namespace {

struct Backend {
  std::string name;
  // Opens the database (again: a reopen after the previous one was dropped).
  std::function<std::unique_ptr<JobDb>(const std::string& dir)> open;
};

class JobDbContract : public ::testing::TestWithParam<Backend> {
 protected:
  std::unique_ptr<JobDb> open() { return GetParam().open(dir_.path() + "/db"); }
  testing::TempDir dir_;
};

proto::JobInfo job(const std::string& id, const std::string& state) {
  return {.id = id, .state = state, .client = "ci", .spec = "((from busybox))"};
}

TEST_P(JobDbContract, StagedWritesAreInvisibleUntilCommitted) {
  auto db = open();
  EXPECT_EQ(*db->next_seq(), 1u);
  db->put_job(1, job("j1", "queued"));
  db->put_next_seq(2);
  EXPECT_TRUE(db->has_pending());
  EXPECT_FALSE(db->get_job(1)->has_value());
  ASSERT_TRUE(db->commit());
  EXPECT_FALSE(db->has_pending());
  auto got = db->get_job(1);
  ASSERT_TRUE(got && *got);
  EXPECT_EQ((*got)->state, "queued");
  EXPECT_EQ((*got)->spec, "((from busybox))");
  EXPECT_EQ(*db->next_seq(), 2u);
}

TEST_P(JobDbContract, LogsReadBackByOffsetAcrossChunks) {
  auto db = open();
  db->append_log(3, 0, "hello ");
  db->append_log(3, 6, "world\n");
  db->append_log(3, 12, "bye\n");
  ASSERT_TRUE(db->commit());
  EXPECT_EQ(*db->log_size(3), 16u);
  EXPECT_EQ(*db->log_size(4), 0u);
  EXPECT_EQ(*db->read_log(3, 0, 100), "hello world\nbye\n");
  EXPECT_EQ(*db->read_log(3, 4, 5), "o wor");
  EXPECT_EQ(*db->read_log(3, 12, 100), "bye\n");
  EXPECT_EQ(*db->read_log(3, 16, 100), "");
}

TEST_P(JobDbContract, AReopenSeesCommittedDataOnly) {
  {
    auto db = open();
    db->put_job(1, job("j1", "succeeded"));
    db->put_job(2, job("j2", "running"));
    db->put_worker_state("w1", "paused");
    db->put_worker_state("w2", "draining");
    ASSERT_TRUE(db->commit());
    db->put_worker_state("w2", "");
    ASSERT_TRUE(db->commit());
    db->put_job(3, job("j3", "queued"));  // never committed
  }
  auto db = open();
  std::vector<std::uint64_t> seqs;
  ASSERT_TRUE(db->for_each_job([&](std::uint64_t seq, std::string_view record) {
    seqs.push_back(seq);
    EXPECT_TRUE(proto::decode_job_record(record));
  }));
  EXPECT_EQ(seqs, (std::vector<std::uint64_t>{1, 2}));
  auto states = db->worker_states();
  ASSERT_TRUE(states);
  ASSERT_EQ(states->size(), 1u);
  EXPECT_EQ((*states)[0], (std::pair<std::string, std::string>{"w1", "paused"}));
}

INSTANTIATE_TEST_SUITE_P(
    Backends, JobDbContract,
    ::testing::Values(Backend{"rocksdb",
                              [](const std::string& dir) {
                                auto db = open_rocksdb_job_db(dir, {});
                                EXPECT_TRUE(db) << db.error().to_string();
                                return std::move(*db);
                              }},
                      Backend{"memory",
                              // One store per test directory, kept across reopens.
                              [](const std::string& dir) {
                                static std::map<std::string, std::shared_ptr<MemoryJobStore>> stores;
                                auto& store = stores[dir];
                                if (!store) store = std::make_shared<MemoryJobStore>();
                                return std::unique_ptr<JobDb>(new MemoryJobDb(store));
                              }}),
    [](const ::testing::TestParamInfo<Backend>& param) { return param.param.name; });

}  // namespace
}  // namespace kiln::scheduler

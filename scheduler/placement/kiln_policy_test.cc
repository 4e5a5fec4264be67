// The "kiln" policy on small farms with a fake clock. After each scenario the
// policy's state (Policy::dump) is compared as text, as OCluster's tests do.
#include <gtest/gtest.h>

#include "scheduler/placement/inventory.h"
#include "scheduler/placement/policy.h"

namespace kiln::placement {
namespace {

// A chain of readable step names (step_digest hashes them).
std::vector<std::string> chain(std::initializer_list<const char*> names) {
  return {names.begin(), names.end()};
}

class KilnPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override { policy = make_kiln_policy(options); }

  void worker(const std::string& name, std::uint32_t capacity = 1, std::vector<std::string> labels = {},
              bool accepting = true, std::uint64_t disk = 0) {
    policy->update_worker({.name = name,
                           .pool = "linux",
                           .labels = std::move(labels),
                           .capacity = capacity,
                           .accepting = accepting,
                           .disk_free_bytes = disk},
                          now);
  }
  void job(const std::string& id, std::vector<std::string> steps, const std::string& client = "ci",
           bool urgent = false, std::vector<std::string> labels = {}) {
    policy->add_job({.id = id,
                     .pool = "linux",
                     .client = client,
                     .urgent = urgent,
                     .labels = std::move(labels),
                     .steps = std::move(steps),
                     .submitted_at = now},
                    now);
  }
  // "job->worker ..." for the assignments made now.
  std::string assign() {
    std::string out;
    for (const Assignment& a : policy->assign(now))
      out += (out.empty() ? "" : " ") + a.job_id + "->" + a.worker;
    return out;
  }
  // Finishes a job whose steps were all built cold, `seconds` each.
  void finish(const std::string& w, const std::string& id, const std::vector<std::string>& steps,
              double seconds) {
    std::vector<StepReport> reports;
    for (const std::string& s : steps) reports.push_back({s, false, seconds});
    policy->job_finished(w, id, reports, now);
  }
  // Teaches the policy what each step costs, by a job that built them on `w`.
  void learn(const std::string& w, const std::vector<std::string>& steps, double seconds) {
    job("learn-" + w, steps);
    ASSERT_EQ(assign(), "learn-" + w + "->" + w);
    finish(w, "learn-" + w, steps, seconds);
  }
  std::string dump() { return policy->dump(now); }

  // Pure finish-first, no near-tie rule: the numbers below follow by hand.
  PolicyOptions options{.wait_weight = 1, .near_tie_fraction = 0};
  std::unique_ptr<Policy> policy;
  double now = 0;
};

TEST_F(KilnPolicyTest, WarmWorkerChosen) {
  worker("w1");
  worker("w2");
  worker("w3");
  policy->inventory("w2", true, chain({"base", "deps-a", "deps-b"}), {});
  job("j1", chain({"base", "deps-a", "deps-b", "commit-1"}));
  EXPECT_EQ(assign(), "j1->w2");
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue []\n"
            "  w1 0/1 running [] holds 0\n"
            "  w2 1/1 running [j1] free-in 30s holds 3\n"
            "  w3 0/1 running [] holds 0\n"
            "clients: linux/ci(1)+30s\n");
}

TEST_F(KilnPolicyTest, LongestCachedPrefixWins) {
  worker("w1");
  worker("w2");
  policy->inventory("w1", true, chain({"base", "deps-a"}), {});
  policy->inventory("w2", true, chain({"base", "deps-a", "deps-b"}), {});
  job("j1", chain({"base", "deps-a", "deps-b", "commit-1"}));
  EXPECT_EQ(assign(), "j1->w2");
}

TEST_F(KilnPolicyTest, BusyWarmWorkerIsWaitedForWhenThatFinishesSooner) {
  worker("warm");
  worker("cold");
  // Steps cost 300 s; an unknown step is estimated at the pool's mean, 300 s.
  learn("warm", chain({"base", "deps"}), 300);
  job("long", chain({"base", "deps", "commit-0"}));
  EXPECT_EQ(assign(), "long->warm");  // warm and busy for ~300 s
  job("j1", chain({"base", "deps", "commit-1"}));
  // Cold would take 3 x 300; warm frees in 300 s and then needs 300.
  EXPECT_EQ(assign(), "");
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue []\n"
            "  cold 0/1 running [] holds 0\n"
            "  warm 1/1 running [long] reserved [j1] free-in 600s holds 2\n"
            "clients: linux/ci(1)+660s\n");
  now = 250;
  finish("warm", "long", chain({"base", "deps", "commit-0"}), 250);
  EXPECT_EQ(assign(), "j1->warm");
  EXPECT_EQ(policy->queued(), 0u);
}

TEST_F(KilnPolicyTest, OverloadedWarmWorkerBypassed) {
  worker("warm");
  worker("cold");
  learn("warm", chain({"base", "deps"}), 60);  // base 60 s, deps 60 s
  job("long", chain({"base", "deps", "slow-tests"}), "ci");
  EXPECT_EQ(assign(), "long->warm");  // ~30 s expected (unknown step)
  // Six commits (the unknown commit step is estimated at the 60 s mean). c1
  // waits for warm (frees at 60 s, then 60 s: 120 < 180 cold); c2 too (180:
  // a tie with building it all on the idle cold worker, won by building
  // less); for c3 warm would take 240 > 180, so c3 goes to the cold worker.
  // The rest wait in the pool queue.
  for (int i = 1; i <= 6; ++i) {
    std::string c = "commit-" + std::to_string(i);
    job("c" + std::to_string(i), chain({"base", "deps", c.c_str()}));
  }
  std::string first = assign();
  EXPECT_EQ(first, "c3->cold");
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue [c4 c5 c6]\n"
            "  cold 1/1 running [c3] free-in 180s holds 0\n"
            "  warm 1/1 running [long] reserved [c1 c2] free-in 180s holds 2\n"
            "clients: linux/ci(1)+480s\n");
}

// A pipeline's jobs share a build in progress: the second and third wait
// for the first's build on its worker rather than rebuild it on idle ones
// (the defaults weigh a rebuilt second above a waited one).
TEST_F(KilnPolicyTest, PipelineJobsShareABuildInProgress) {
  options = PolicyOptions{};
  SetUp();
  for (const char* w : {"w1", "w2", "w3"}) worker(w);
  worker("w1", 2);
  job("other", chain({"x"}));
  job("unit", chain({"base", "deps", "build-7", "unit"}));
  job("lint", chain({"base", "deps", "build-7", "lint"}));
  job("integ", chain({"base", "deps", "build-7", "integ"}));
  EXPECT_EQ(assign(), "other->w1 unit->w2");
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue []\n"
            "  w1 1/2 running [other] holds 0\n"
            "  w2 1/1 running [unit] reserved [lint integ] free-in 180s holds 0\n"
            "  w3 0/1 running [] holds 0\n"
            "clients: linux/ci(1)+390s\n");
  // Cold on a free worker: 120 s. On w2: ready at 120 s, then 30 s, and a
  // waited second weighs half: 90. When unit ends, they start there in turn.
  now = 120;
  finish("w2", "unit", chain({"base", "deps", "build-7", "unit"}), 30);
  EXPECT_EQ(assign(), "lint->w2");
}

TEST_F(KilnPolicyTest, InventoryUpdatedByPrunes) {
  worker("w1");
  worker("w2");
  policy->inventory("w1", true, chain({"base", "deps-a", "deps-b"}), {});
  policy->inventory("w2", true, chain({"base", "deps-a"}), {});
  // w1 prunes its two deepest steps (removal).
  policy->inventory("w1", false, {}, chain({"deps-a", "deps-b"}));
  job("j1", chain({"base", "deps-a", "deps-b", "commit"}));
  EXPECT_EQ(assign(), "j1->w2");
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue []\n"
            "  w1 0/1 running [] holds 1\n"
            "  w2 1/1 running [j1] free-in 60s holds 2\n"
            "clients: linux/ci(1)+60s\n");
  // The digest follows the removals too.
  EXPECT_EQ(policy->inventory_digest("w1"), [] {
    InventoryIndex index;
    WorkerSlot s = index.add_worker("x");
    index.add(s, std::vector<Digest>{step_digest("base")});
    return index.set_digest(s);
  }());
}

TEST_F(KilnPolicyTest, PausedAndLowDiskWorkersSkipped) {
  options.low_disk_bytes = 1000;
  SetUp();
  worker("paused", 1, {}, /*accepting=*/false);
  worker("full", 1, {}, true, /*disk=*/999);
  worker("cold", 1, {}, true, /*disk=*/5000);
  for (const char* w : {"paused", "full"}) policy->inventory(w, true, chain({"base", "deps"}), {});
  job("j1", chain({"base", "deps", "commit"}));
  EXPECT_EQ(assign(), "j1->cold");
  job("j2", chain({"base", "deps", "commit-2"}));
  EXPECT_EQ(assign(), "");  // nothing new for the paused and low-disk workers
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue [j2]\n"
            "  cold 1/1 running [j1] free-in 90s holds 0\n"
            "  full 0/1 not-accepting running [] holds 2\n"
            "  paused 0/1 not-accepting running [] holds 2\n"
            "clients: linux/ci(1)+60s\n");
  // Resumed: it takes the job it is warm for.
  worker("paused", 1, {}, true);
  EXPECT_EQ(assign(), "j2->paused");
}

TEST_F(KilnPolicyTest, ReservedJobsGoBackWhenTheirWorkerStopsAccepting) {
  worker("warm");
  worker("cold");
  learn("warm", chain({"base", "deps"}), 300);
  job("long", chain({"base", "deps", "commit-0"}));
  EXPECT_EQ(assign(), "long->warm");
  job("j1", chain({"base", "deps", "commit-1"}));
  EXPECT_EQ(assign(), "");  // reserved on warm
  worker("warm", 1, {}, /*accepting=*/false);
  EXPECT_EQ(assign(), "j1->cold");
}

TEST_F(KilnPolicyTest, FairnessBetweenClients) {
  worker("w1");
  job("a1", chain({"a-1"}), "alice");
  EXPECT_EQ(assign(), "a1->w1");
  job("a2", chain({"a-2"}), "alice");
  job("a3", chain({"a-3"}), "alice");
  now = 1;
  job("b1", chain({"b-1"}), "bob");  // fair start 1, before alice's next at 60
  now = 30;
  policy->job_released("w1", "a1", now);
  std::string order = assign();
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue [a2 a3]\n"
            "  w1 1/1 running [b1] free-in 30s holds 0\n"
            "clients: linux/alice(1)+60s linux/bob(1)+1s\n");
  policy->job_released("w1", "b1", now);
  order += " " + assign();
  policy->job_released("w1", "a2", now);
  order += " " + assign();
  EXPECT_EQ(order, "b1->w1 a2->w1 a3->w1");
}

TEST_F(KilnPolicyTest, ClientRatesScaleShares) {
  worker("w1");
  policy->set_client_rate("linux", "big", 3);
  job("hold", chain({"h"}), "other");
  EXPECT_EQ(assign(), "hold->w1");
  for (int i = 1; i <= 3; ++i) job("big" + std::to_string(i), chain({"x"}), "big");
  for (int i = 1; i <= 2; ++i) job("small" + std::to_string(i), chain({"y"}), "small");
  // big's jobs start every 10 s of fair time, small's every 30 s.
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue [big1 small1 big2 big3 small2]\n"
            "  w1 1/1 running [hold] free-in 30s holds 0\n"
            "clients: linux/big(3)+30s linux/other(1)+30s linux/small(1)+60s\n");
}

TEST_F(KilnPolicyTest, UrgentFirstWithAging) {
  worker("w1");
  job("hold", chain({"h"}));
  EXPECT_EQ(assign(), "hold->w1");
  job("batch", chain({"b"}), "nightly");
  now = 500;
  job("u1", chain({"u1"}), "pr", /*urgent=*/true);  // key 500 - 600 < 0: before batch
  now = 700;
  job("u2", chain({"u2"}), "pr2", /*urgent=*/true);  // key 700 - 600 > 0: batch has aged past it
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue [u1 batch u2]\n"
            "  w1 1/1 running [hold] holds 0\n"
            "clients: linux/ci(1) linux/nightly(1) linux/pr(1) linux/pr2(1)+30s\n");
}

TEST_F(KilnPolicyTest, RedecisionMovesAReservedJobWhenAnotherWorkerBecomesBetter) {
  worker("warm");
  worker("cold");
  learn("warm", chain({"base", "deps"}), 300);
  job("long", chain({"base", "deps", "commit-0"}));
  EXPECT_EQ(assign(), "long->warm");
  job("j1", chain({"base", "deps", "commit-1"}));
  EXPECT_EQ(assign(), "");  // reserved on warm: finishes at ~600 s there, 900 s on cold
  // A new worker arrives that already holds the dependencies.
  worker("fresh");
  policy->inventory("fresh", true, chain({"base", "deps"}), {});
  EXPECT_EQ(assign(), "j1->fresh");
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue []\n"
            "  cold 0/1 running [] holds 0\n"
            "  fresh 1/1 running [j1] free-in 300s holds 2\n"
            "  warm 1/1 running [long] free-in 300s holds 2\n"
            "clients: linux/ci(1)+660s\n");
}

TEST_F(KilnPolicyTest, LabelsConstrainAndDoNotBlockTheQueue) {
  worker("x86", 1, {"arch=x86_64"});
  worker("arm", 1, {"arch=arm64"});
  job("needs-gpu", chain({"g"}), "ci", false, {"gpu=yes"});
  job("arm-job", chain({"a"}), "ci", false, {"arch=arm64"});
  job("any", chain({"b"}));
  EXPECT_EQ(assign(), "arm-job->arm any->x86");
  EXPECT_EQ(policy->queued(), 1u);  // needs-gpu waits for a worker with its label
  worker("gpu", 2, {"gpu=yes"});
  EXPECT_EQ(assign(), "needs-gpu->gpu");
}

TEST_F(KilnPolicyTest, ExpectedSecondsAndUnknownWorkers) {
  worker("w1");
  learn("w1", chain({"base", "deps"}), 100);
  job("j1", chain({"base", "deps", "commit"}));
  EXPECT_EQ(policy->expected_seconds("j1"), 100.0);  // mean of learned steps for the unknown one
  EXPECT_EQ(assign(), "j1->w1");
  EXPECT_EQ(policy->expected_seconds("j1"), 100.0);
  EXPECT_FALSE(policy->expected_seconds("nope").has_value());
  EXPECT_FALSE(policy->inventory_digest("nope").has_value());
  policy->job_finished("ghost", "j1", {}, now);  // unknown worker: ignored
  policy->job_released("w1", "j1", now);
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue []\n"
            "  w1 0/1 running [] holds 2\n"
            "clients: linux/ci(1)+160s\n");
}

// The defaults weigh a waited second at half a built second only while the
// pool is busy. In a pool with many idle slots nobody waits for a rebuild,
// so the job goes where it finishes first.
TEST_F(KilnPolicyTest, IdlePoolWeighsWaitsFully) {
  auto scenario = [&](int idle_workers) {
    options = PolicyOptions{.near_tie_fraction = 0};  // wait_weight 0.5
    SetUp();
    worker("warm");
    for (int i = 0; i < idle_workers; ++i) worker("idle" + std::to_string(i));
    policy->inventory("warm", true, chain({"base", "deps-a", "deps-b"}), {});
    // warm runs a job of 5 unknown steps (30 s each): free in 150 s.
    policy->adopt(
        {.id = "long", .pool = "linux", .client = "ci", .steps = chain({"x1", "x2", "x3", "x4", "x5"})},
        "warm", now);
    // j: 30 s on warm after 150 s of waiting; 120 s cold on an idle worker.
    job("j", chain({"base", "deps-a", "deps-b", "commit"}));
    return assign();
  };
  // 2 jobs for 2 slots: busy. Waiting weighs 0.5: 75 + 30 < 120.
  EXPECT_EQ(scenario(1), "");
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue []\n"
            "  idle0 0/1 running [] holds 0\n"
            "  warm 1/1 running [long] reserved [j] free-in 180s holds 3\n"
            "clients: linux/ci(1)+30s\n");
  // 2 jobs for 17 slots: waiting weighs 1 - 0.5 x (2/17)/0.5 = 0.88:
  // 132 + 30 > 120, so it builds cold now and finishes first.
  EXPECT_EQ(scenario(16), "j->idle0");
}

// A step no worker holds is costed from what the step at the same distance
// after the same cached ancestor cost last time: the next commit's build
// after a repository's dependencies costs about what the last one did.
TEST_F(KilnPolicyTest, NewCommitCostedFromTheLastOne) {
  worker("w1");
  learn("w1", chain({"base", "deps"}), 100);
  job("c1", chain({"base", "deps", "build-1", "test-1"}));
  ASSERT_EQ(assign(), "c1->w1");
  now = 1000;
  policy->job_finished(
      "w1", "c1", {{"base", true, 0.5}, {"deps", true, 0.5}, {"build-1", false, 600}, {"test-1", false, 200}},
      now);
  job("c2", chain({"base", "deps", "build-2", "test-2"}));
  // 600 + 200 as last time, not 2 x the pool's mean cold step.
  EXPECT_EQ(policy->expected_seconds("c2"), 800.0);
  // No history after "base": 2 x the pool's mean cold step, (100+100+600+200)/4.
  job("other", chain({"base", "deps-other", "build-x"}));
  EXPECT_NEAR(policy->expected_seconds("other").value_or(0), 500.0, 1e-6);
}

// A reservation rests on an estimate. When the busy worker's job overruns
// it, the wait is estimated again (an overrunning job is expected to run as
// long again as it has overrun) and an idle worker takes the job once
// rebuilding there finishes sooner.
TEST_F(KilnPolicyTest, OverdueReservationWeighedAgain) {
  options = PolicyOptions{.near_tie_fraction = 0};  // wait_weight 0.5
  SetUp();
  worker("warm");
  worker("cold");
  policy->inventory("warm", true, chain({"base", "deps-a", "deps-b"}), {});
  policy->adopt({.id = "long", .pool = "linux", .client = "ci", .steps = chain({"x1", "x2"})}, "warm", now);
  job("j", chain({"base", "deps-a", "deps-b", "commit"}));
  // warm: 60 s x 0.5 + 30 = 60 < 120 cold.
  EXPECT_EQ(assign(), "");
  // At 200 s long has overrun by 140 s: 140 x 0.5 + 30 = 100 < 120, stay.
  now = 200;
  EXPECT_EQ(assign(), "");
  // At 300 s: 240 x 0.5 + 30 = 150 > 120: move.
  now = 300;
  EXPECT_EQ(assign(), "j->cold");
}

// Two jobs sharing a base on two idle workers: waiting for the first one's
// base would tie with building it again (0.5 x 60 + 30 = 60 = 2 x 30), and
// with a slot for every job a tie goes to starting now. One more job than
// slots, and the third waits for the shared base instead.
TEST_F(KilnPolicyTest, SpareSlotsStartJobsThatShareAStepTogether) {
  options = PolicyOptions{};
  SetUp();
  worker("w1");
  worker("w2");
  job("j1", chain({"base", "run-1"}));
  job("j2", chain({"base", "run-2"}));
  EXPECT_EQ(assign(), "j1->w1 j2->w2");
  options = PolicyOptions{};
  SetUp();
  worker("w1");
  worker("w2");
  job("j1", chain({"base", "run-1"}));
  job("j2", chain({"base", "run-2"}));
  job("j3", chain({"base", "run-3"}));
  EXPECT_EQ(assign(), "j1->w1 j3->w2");
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue []\n"
            "  w1 1/1 running [j1] reserved [j2] free-in 90s holds 0\n"
            "  w2 1/1 running [j3] free-in 60s holds 0\n"
            "clients: linux/ci(1)+180s\n");
}

// A new chain stays where it lands (its repository's later jobs find it
// cached), so it goes to the worker with the least work started lately,
// not merely the one that started a job longest ago.
TEST_F(KilnPolicyTest, NewChainsGoToTheWorkerWithTheLeastRecentWork) {
  worker("w1");
  worker("w2");
  std::vector<std::string> long_chain;
  for (int i = 0; i < 20; ++i) long_chain.push_back("long-" + std::to_string(i));
  policy->adopt({.id = "long", .pool = "linux", .client = "ci", .steps = long_chain}, "w1", now);  // 600 s
  now = 10;
  policy->adopt({.id = "short", .pool = "linux", .client = "ci", .steps = chain({"s"})}, "w2", now);  // 30 s
  now = 40;
  policy->job_released("w2", "short", now);
  now = 610;
  policy->job_released("w1", "long", now);
  // Both idle; w1 started its job longest ago, but w2 has done far less.
  job("new-repo", chain({"base", "deps", "commit"}));
  EXPECT_EQ(assign(), "new-repo->w2");
}

// The weight of a wait follows demand up at once: a burst after a quiet
// spell is weighed as a busy pool from its first decision.
TEST_F(KilnPolicyTest, BurstAfterAQuietSpellCountsAsBusyAtOnce) {
  options = PolicyOptions{.near_tie_fraction = 0};  // wait_weight 0.5
  SetUp();
  worker("warm");
  for (int i = 0; i < 15; ++i) worker("idle" + std::to_string(i));
  policy->inventory("warm", true, chain({"base", "deps-a", "deps-b"}), {});
  for (now = 0; now <= 3000; now += 60) EXPECT_EQ(assign(), "");  // quiet: nothing to do
  now = 3010;
  policy->adopt(
      {.id = "long", .pool = "linux", .client = "ci", .steps = chain({"x1", "x2", "x3", "x4", "x5"})}, "warm",
      now);  // 150 s
  job("j", chain({"base", "deps-a", "deps-b", "commit"}));
  for (int i = 0; i < 20; ++i)
    job("other-" + std::to_string(i), chain({("other-step-" + std::to_string(i)).c_str()}));
  // 22 jobs for 16 slots: waiting weighs 0.5, so j waits for warm
  // (150 x 0.5 + 30 = 105 < 120 cold) and 15 others start on the idle workers.
  std::string started = assign();
  EXPECT_EQ(started.find("j->"), std::string::npos) << started;
  EXPECT_EQ(policy->expected_seconds("j"), 30.0);  // reserved on warm: only its commit step to build
}

// A job that starts on a slot while the step it shares is still being
// built there waits for it inside the slot: its expected end counts the
// wait (otherwise it would look overdue before it could have ended).
TEST_F(KilnPolicyTest, JobWaitingForASharedStepIsExpectedToEndAfterIt) {
  worker("w1", 2);
  job("j1", chain({"base", "run-1"}));
  EXPECT_EQ(assign(), "j1->w1");
  job("j2", chain({"base", "run-2"}));
  EXPECT_EQ(assign(), "j2->w1");
  // base is ready at 30 s; then j2's own step, 30 s.
  EXPECT_EQ(dump(),
            "kiln\n"
            "pool linux: queue []\n"
            "  w1 2/2 running [j1 j2] free-in 60s holds 0\n"
            "clients: linux/ci(1)+90s\n");
}

// A job queued before a scheduler restart comes back with its submit time:
// it keeps the age it had, so it still goes ahead of urgent work once it
// has waited longer than the urgent advance (600 s).
TEST_F(KilnPolicyTest, AJobQueuedBeforeARestartKeepsItsAge) {
  worker("w1");
  // The scheduler's clock started 200 s ago (its host rebooted); the job
  // was submitted 700 s ago, before that clock's zero.
  now = 200;
  policy->add_job({.id = "old", .pool = "linux", .client = "ci", .steps = chain({"a"}), .submitted_at = -500},
                  now);
  job("new-urgent", chain({"b"}), "ci", /*urgent=*/true);
  EXPECT_EQ(assign(), "old->w1");
  // Without its age, the urgent job would have gone first.
  options = PolicyOptions{.wait_weight = 1, .near_tie_fraction = 0};
  SetUp();
  worker("w1");
  policy->add_job({.id = "old", .pool = "linux", .client = "ci", .steps = chain({"a"}), .submitted_at = now},
                  now);
  job("new-urgent", chain({"b"}), "ci", /*urgent=*/true);
  EXPECT_EQ(assign(), "new-urgent->w1");
}

}  // namespace
}  // namespace kiln::placement

// Work shared out over XLA's intra-op thread pool (included by espcn_cpu_train.cc and espcn_cpu_infer_amx.cc).
#pragma once

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <utility>

#include "espcn_cpu_train.h"  // Schedule

namespace {

// work(i) for i < n: on the calling thread and on up to threads - 1 scheduled tasks, each claiming items in turn.
// Returns when all n are done. A task that starts late finds nothing left and touches nothing but `Shared`.
inline void run_tasks(int n, int threads, const Schedule& schedule, std::function<void(int)> work) {
  struct Shared {
    std::atomic<int> next{0}, done{0};
    int n;
    std::function<void(int)> work;
  };
  auto s = std::make_shared<Shared>();
  s->n = n, s->work = std::move(work);
  auto loop = [](Shared& st) {
    for (int i; (i = st.next.fetch_add(1)) < st.n;) {
      st.work(i);
      st.done.fetch_add(1);
    }
  };
  if (schedule)
    for (int t = 1; t < std::min(threads, n); ++t) schedule([s, loop] { loop(*s); });
  loop(*s);
  while (s->done.load() < n) std::this_thread::yield();
}

}  // namespace

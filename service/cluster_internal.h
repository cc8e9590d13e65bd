/* Shared by cluster_node.c (runtime, queries) and cluster_jobs.c (admin
 * jobs, health, shards, metrics). Not an interface: see cluster_node.h. */
#ifndef STM_SERVICE_CLUSTER_INTERNAL_H
#define STM_SERVICE_CLUSTER_INTERNAL_H

#include "cluster_node.h"

#include "cluster/swim_udp.h"

#include <pthread.h>

#define CL_MAX_LISTENERS 8
#define CL_EVENT_RING 256
#define CL_MAX_JOBS 256

struct cl_event {
  char id[STM_NODE_ID_MAX + 1];
  enum stm_swim_state old_state, new_state;
  bool added;
};

struct cl_chan {
  char id[STM_NODE_ID_MAX + 1];
  char addr[STM_ADDR_MAX + 1];
  grpc_channel *ch;
  unsigned creds_gen; /* stm_rpc_channel_credentials_generation at make */
};

struct cl_lag {
  char id[STM_NODE_ID_MAX + 1];
  double seconds;
};

enum cl_job_kind { CL_JOB_MOVE = 1, CL_JOB_REMOVE = 2 };

struct cl_job {
  enum cl_job_kind kind;
  uint32_t shard;                 /* MOVE */
  char node[STM_NODE_ID_MAX + 1]; /* REMOVE */
  bool force;
  int attempts; /* failed runs so far (backoff) */
};

struct cl {
  bool enabled;
  char self[STM_NODE_ID_MAX + 1];
  char self_rpc[STM_ADDR_MAX + 1];
  char self_bind[STM_ADDR_MAX + 1];
  uint32_t shards;
  size_t factor;
  enum stm_write_quorum quorum;
  char map_path[4200];
  struct stm_store *store;
  struct stm_swim_node *swim;

  pthread_mutex_t mu; /* everything below; never held across SWIM calls */
  pthread_cond_t cv;  /* jobs and stop */
  bool stopping, threads_running;
  pthread_t tick, worker;
  struct stm_cluster_member *members; /* the last snapshot, self first */
  size_t member_count;
  struct stm_shard_map map;
  uint64_t best_peer_version; /* highest map version a peer announces */
  char best_peer[STM_NODE_ID_MAX + 1];
  struct cl_event events[CL_EVENT_RING];
  size_t ev_head, ev_count;
  struct {
    stm_cluster_listener fn;
    void *arg;
  } listeners[CL_MAX_LISTENERS];
  size_t listener_count;
  stm_cluster_sync_fn sync_fn;
  void *sync_arg;
  stm_cluster_shard_count_fn count_fn;
  void *count_arg;
  struct cl_chan *chans;
  size_t chan_count;
  grpc_channel **graveyard; /* replaced channels, destroyed at stop */
  size_t grave_count;
  struct cl_lag *lags;
  size_t lag_count;
  struct cl_job jobs[CL_MAX_JOBS];
  size_t job_count;
  int64_t active_move; /* the shard the worker is moving, or -1 */
};

/* The one runtime (NULL before stm_cluster_start / after stop). */
extern struct cl *stm__cl;

/* The store's assertion_count (0 without a store). */
uint64_t stm__cl_store_count(const struct cl *c);
/* The worker thread (cluster_jobs.c). */
void *stm__cl_worker(void *arg);
/* Queue a job; mu held. 0 or STM_ENOMEM (queue full). */
int stm__cl_queue(struct cl *c, const struct cl_job *job);
/* Queue the moves this node drives (is the first UP old replica of) and
 * has not queued yet; mu held. */
void stm__cl_scan_moves(struct cl *c);
/* Persist the map; mu held. Logs on failure. */
void stm__cl_save_map(struct cl *c);
/* The ids of the UP members (mu held); ids borrowed from the snapshot. */
size_t stm__cl_up_ids(struct cl *c, const char **ids, size_t max);

#endif

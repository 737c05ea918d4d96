/* Consumer-group lag monitor (see kafka_lag.h). */
#include "stream/kafka_lag.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/kafka.h"
#include "domain/lag.h"

struct eo_kafka_lag {
    rd_kafka_t *rk; /* a consumer handle with the group id; never subscribes */
    rd_kafka_topic_t *topic;
    char topic_name[256];
    char role[32];
    int64_t interval_ms;
    pthread_t thread;
    bool started;
    atomic_bool stopping;
    pthread_mutex_t lock;      /* guards the fields below */
    eo_lag_partition_t *parts; /* the last measurement */
    size_t nparts;
    int64_t measured_us; /* monotonic time of the last measurement; 0: none */
    int32_t *assigned;
    size_t nassigned;
};

/* One measurement into *out (caller frees). Returns the partition count, or -1 when the brokers
 * did not answer in time. Monitor thread. */
static int measure(eo_kafka_lag_t *lag, eo_lag_partition_t **out)
{
    int timeout = (int)lag->interval_ms;
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(lag->rk, 0, lag->topic, &md, timeout) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    int n = -1;
    rd_kafka_topic_partition_list_t *list = NULL;
    eo_lag_partition_t *parts = NULL;
    if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0)
        goto done;
    const struct rd_kafka_metadata_topic *t = &md->topics[0];
    list = rd_kafka_topic_partition_list_new(t->partition_cnt);
    parts = calloc((size_t)t->partition_cnt, sizeof *parts);
    if (!list || !parts)
        goto done;
    for (int i = 0; i < t->partition_cnt; i++) {
        int64_t low, high;
        int32_t id = t->partitions[i].id;
        if (rd_kafka_query_watermark_offsets(lag->rk, lag->topic_name, id, &low, &high, timeout) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            goto done;
        parts[i] = (eo_lag_partition_t){.partition = id, .end = high, .committed = low};
        rd_kafka_topic_partition_list_add(list, lag->topic_name, id);
    }
    if (rd_kafka_committed(lag->rk, list, timeout) != RD_KAFKA_RESP_ERR_NO_ERROR)
        goto done;
    for (int i = 0; i < list->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &list->elems[i];
        if (tp->err)
            goto done;
        if (tp->offset >= 0)
            parts[i].committed = tp->offset; /* same order as added */
    }
    n = t->partition_cnt;
    *out = parts;
    parts = NULL;
done:
    free(parts);
    if (list)
        rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_metadata_destroy(md);
    return n;
}

static void *monitor_main(void *arg)
{
    eo_kafka_lag_t *lag = arg;
    while (!atomic_load(&lag->stopping)) {
        int64_t next = eo_clock_mono_us() + lag->interval_ms * 1000;
        eo_lag_partition_t *fresh = NULL;
        int n = measure(lag, &fresh);
        rd_kafka_poll(lag->rk, 0); /* drain the handle's error events */
        if (n > 0) {
            int64_t now = eo_clock_mono_us();
            pthread_mutex_lock(&lag->lock);
            eo_lag_track(lag->parts, lag->nparts, fresh, (size_t)n, now);
            free(lag->parts);
            lag->parts = fresh;
            lag->nparts = (size_t)n;
            lag->measured_us = now;
            pthread_mutex_unlock(&lag->lock);
        }
        while (!atomic_load(&lag->stopping) && eo_clock_mono_us() < next)
            eo_clock_sleep_ms(20);
    }
    return NULL;
}

int eo_kafka_lag_new(const eo_kafka_lag_options_t *opt, eo_kafka_lag_t **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    eo_kafka_lag_t *lag = calloc(1, sizeof *lag);
    if (!lag)
        return EO_ENOMEM;
    pthread_mutex_init(&lag->lock, NULL);
    snprintf(lag->topic_name, sizeof lag->topic_name, "%s", opt->topic);
    snprintf(lag->role, sizeof lag->role, "%s", opt->role);
    lag->interval_ms = opt->interval_ms;
    char client_id[64];
    snprintf(client_id, sizeof client_id, "eventops-%s-lag", opt->role);
    rd_kafka_conf_t *conf = eo_kafka_conf_new(opt->brokers, err, errlen);
    /* its connection errors would repeat the consuming client's: only critical lines */
    const char *kv[] = {
        "group.id", opt->group,        "client.id",      client_id,   "enable.auto.commit",
        "false",    "isolation.level", "read_committed", "log_level", "2",
        NULL};
    if (!conf || eo_kafka_set_all(conf, kv, err, errlen) < 0) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        eo_kafka_lag_free(lag);
        return EO_EINVAL;
    }
    char reason[512];
    if (!(lag->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, reason, sizeof reason))) {
        snprintf(err, errlen, "kafka lag monitor: %s", reason);
        rd_kafka_conf_destroy(conf);
        eo_kafka_lag_free(lag);
        return EO_EIO;
    }
    conf = NULL; /* now owned by the handle */
    if (!(lag->topic = rd_kafka_topic_new(lag->rk, opt->topic, NULL)) ||
        pthread_create(&lag->thread, NULL, monitor_main, lag) != 0) {
        snprintf(err, errlen, "cannot start the kafka lag monitor");
        eo_kafka_lag_free(lag);
        return EO_EIO;
    }
    lag->started = true;
    *out = lag;
    return 0;
}

void eo_kafka_lag_free(eo_kafka_lag_t *lag)
{
    if (!lag)
        return;
    atomic_store(&lag->stopping, true);
    if (lag->started)
        pthread_join(lag->thread, NULL);
    if (lag->topic)
        rd_kafka_topic_destroy(lag->topic);
    if (lag->rk)
        rd_kafka_destroy(lag->rk);
    free(lag->parts);
    free(lag->assigned);
    pthread_mutex_destroy(&lag->lock);
    free(lag);
}

int eo_kafka_lag_set_assigned(eo_kafka_lag_t *lag, const rd_kafka_topic_partition_list_t *parts)
{
    int32_t *copy = NULL;
    size_t n = 0;
    if (parts->cnt > 0) {
        if (!(copy = malloc((size_t)parts->cnt * sizeof *copy)))
            return EO_ENOMEM;
        for (int i = 0; i < parts->cnt; i++)
            if (!strcmp(parts->elems[i].topic, lag->topic_name))
                copy[n++] = parts->elems[i].partition;
    }
    pthread_mutex_lock(&lag->lock);
    free(lag->assigned);
    lag->assigned = copy;
    lag->nassigned = n;
    pthread_mutex_unlock(&lag->lock);
    return 0;
}

void eo_kafka_lag_clear_assigned(eo_kafka_lag_t *lag)
{
    pthread_mutex_lock(&lag->lock);
    free(lag->assigned);
    lag->assigned = NULL;
    lag->nassigned = 0;
    pthread_mutex_unlock(&lag->lock);
}

bool eo_kafka_lag_brokers_up(eo_kafka_lag_t *lag)
{
    pthread_mutex_lock(&lag->lock);
    int64_t at = lag->measured_us;
    pthread_mutex_unlock(&lag->lock);
    return at && eo_clock_mono_us() - at <= 3 * lag->interval_ms * 1000;
}

bool eo_kafka_lag_stalled(eo_kafka_lag_t *lag, int64_t stall_ms)
{
    pthread_mutex_lock(&lag->lock);
    bool stalled = eo_lag_stalled(lag->parts, lag->nparts, lag->assigned, lag->nassigned,
                                  eo_clock_mono_us(), stall_ms * 1000);
    pthread_mutex_unlock(&lag->lock);
    return stalled;
}

int eo_kafka_lag_write_metrics(eo_buf_t *out, void *ud)
{
    eo_kafka_lag_t *lag = ud;
    pthread_mutex_lock(&lag->lock);
    double age = lag->measured_us ? (double)(eo_clock_mono_us() - lag->measured_us) / 1e6 : -1.0;
    int r =
        eo_buf_printf(out, "# HELP eventops_kafka_consumer_lag Records of a partition the group "
                           "has not committed yet (high watermark minus committed offset).\n"
                           "# TYPE eventops_kafka_consumer_lag gauge\n");
    for (size_t i = 0; r == 0 && i < lag->nparts; i++)
        r = eo_buf_printf(out,
                          "eventops_kafka_consumer_lag{role=\"%s\",topic=\"%s\","
                          "partition=\"%d\"} %lld\n",
                          lag->role, lag->topic_name, (int)lag->parts[i].partition,
                          (long long)eo_lag_of(&lag->parts[i]));
    if (r == 0)
        r = eo_buf_printf(out,
                          "# HELP eventops_kafka_consumer_lag_age_seconds Time since the lag was "
                          "last measured at the brokers (-1: never).\n"
                          "# TYPE eventops_kafka_consumer_lag_age_seconds gauge\n"
                          "eventops_kafka_consumer_lag_age_seconds{role=\"%s\"} %.3f\n",
                          lag->role, age);
    pthread_mutex_unlock(&lag->lock);
    return r;
}

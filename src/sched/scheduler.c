/* The campaign slot scheduler: see scheduler.h for the flow; its statements are sql/queries/sched.sql, and
 * the rules the database enforces are campaign_due_slots and campaign_sched_commit (0006_sched.sql, the
 * latter replaced by 0007_article_title.sql).
 *
 * Two machines. A tick claims due campaigns in batches and runs up to SCHED_PARALLEL campaign machines at a
 * time; a campaign machine asks the LLM for titles, then commits. The tick owns its campaigns (an array
 * replaced only when the next claim answers, never inside a campaign's own call stack) and an embedded timer
 * that first starts the tick on the next loop turn and then serves as its deadline; the tick is freed in that
 * timer's close callback, so a callback running inside a finishing tick never sees freed memory. */
#include "sched/scheduler.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "jobs/queue.h"
#include "db/step.h"
#include "pipeline/llm.h"
#include "pipeline/ports.h"
#include "pipeline/titles.h"
#include "queries.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Campaigns claimed by one query. A tick claims again while a batch comes back full, so a backlog is worked
 * off in one tick without holding leases on campaigns that will not be reached soon. */
#define SCHED_CLAIM_BATCH 200
/* Campaigns of one tick in flight at once (each holds at most one LLM call or one transaction). */
#define SCHED_PARALLEL 16
/* Earlier titles of the campaign put in the prompt; the commit still refuses any earlier title. */
#define SCHED_AVOID_MAX 50
/* Titles asked of one LLM call; slots beyond it stay due for the next tick. Only a very long lead or grace
 * can make a campaign have more due slots than this. */
#define SCHED_MAX_TITLES 60

/* ---- statements ---- */

/* Sent first in the claim's and the commit's batches. The planner cannot see through the slot functions'
 * generate_series, estimates these statements as expensive and JIT-compiles them: about 0.6 s of compiling
 * for a statement that runs in a few milliseconds (bench/sched.sh). LOCAL: only for the batch's transaction.
 */
#define NO_JIT_SQL "SET LOCAL jit = off"

int sched_prepare(db_pool_t *pool)
{
    return db_pool_prepare_all(pool, queries_sched, queries_sched_count);
}

/* ---- machines ---- */

#define TICK_STATES(X)                                                                                       \
    X(START)    /* waits for the first loop turn, so the callback never runs inside sched_tick */            \
    X(CLAIM)    /* claims the next batch of due campaigns */                                                 \
    X(CLAIMING) /* waits for the claim query */                                                              \
    X(RUN)      /* starts campaigns up to SCHED_PARALLEL; waits for them to finish (the tick's deadline) */  \
    X(ABORT)    /* stopped early (deadline, shutdown, cancel): stops every operation, ends its leases */     \
    X(DONE)     /* reported; the tick is freed once its timer is closed */

typedef enum {
#define X(s) TICK_##s,
    TICK_STATES(X)
#undef X
} tick_state_t;

static const char *const tick_state_names[] = {
#define X(s) #s,
    TICK_STATES(X)
#undef X
};

#define CAMP_STATES(X)                                                                                       \
    X(IDLE)       /* claimed, not started yet */                                                             \
    X(TITLES)     /* asks the LLM for one title per due slot */                                              \
    X(TITLING)    /* waits for the LLM (bounded by the tick's deadline) */                                   \
    X(COMMIT)     /* sends the campaign's transaction */                                                     \
    X(COMMITTING) /* waits for it (bounded by the tick's deadline) */                                        \
    X(DONE)       /* counted in the tick's report */

typedef enum {
#define X(s) CAMP_##s,
    CAMP_STATES(X)
#undef X
} camp_state_t;

static const char *const camp_state_names[] = {
#define X(s) #s,
    CAMP_STATES(X)
#undef X
};

typedef struct st_camp_t {
    sched_tick_t *tick;
    camp_state_t state;
    int ready; /* the operation the current waiting state waits for has completed */
    char id[37];
    char *subject; /* what the titles are about: the topic, and the description when there is one */
    int due;       /* due slots without an article, as the claim saw them */
    char **avoid;
    size_t navoid;
    char **titles;
    size_t ntitles;
    char *err; /* why there are fewer titles than due slots: stored as the campaign's last_error */
    /* in flight: at most one of these */
    llm_call_t *lc;
    db_step_t step;
} camp_t;

struct st_sched_tick_t {
    sched_t *sched;
    tick_state_t state;
    int ready;
    int advancing; /* tick_advance is on the stack: a nested call only lets the running loop look again */
    int64_t at_us;
    char at[32];  /* at_us as ISO-8601, the form every query gets */
    char id[128]; /* claimed_by of this tick's leases */
    sched_tick_cb cb;
    void *data;
    uint64_t deadline_ms;
    const char *abort_why; /* set: the tick stops early (ABORT) */
    db_step_t step;        /* the claim; step.res holds the last claim's rows */
    int claim_full;
    int claim_sent; /* a claim went out: the tick may hold leases */ /* the last claim filled its batch: claim
                                                                        again after this one */
    camp_t *camps;
    size_t ncamps, next_camp, running;
    sched_report_t report;
    char err[256];
    uv_timer_t timer;
    struct st_sched_tick_t *prev, *next; /* in sched->ticks until freed */
};

struct st_sched_t {
    app_t *app;
    db_target_t db;            /* the pool, or a test's fake */
    uint64_t tick_deadline_ms; /* a test's tick deadline; 0: the one lease_s gives */
    llm_port_t llm;            /* app->llm, or a test's fake; ctx NULL: no LLM */
    uv_timer_t timer;          /* the periodic tick */
    int started, stopping;
    char proc_id[96];
    uint64_t seq;
    sched_tick_t *ticks; /* every tick not yet freed */
    sched_tick_t *timer_tick;
    uint64_t stop_timeout_ms;
    void (*stop_cb)(void *data);
    void *stop_data;
};

static void tick_advance(sched_tick_t *t);
static void camp_advance(camp_t *c);
static void sched_maybe_closed(sched_t *s);

/* How long a tick's lease on a campaign lasts: longer than the work it covers (an LLM call with its retries,
 * then a transaction), so a live tick never loses a campaign; short enough that the campaigns of a process
 * that died are taken over well within SLOT_GRACE_S's default hour. */
static int lease_s(const config_t *cfg)
{
    return cfg->llm_timeout_s * cfg->llm_max_attempts + 180;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void camp_set_state(camp_t *c, camp_state_t s)
{
    if (log_enabled(LOG_LEVEL_DEBUG))
        log_debug("scheduling campaign slots", "campaign %s: %s -> %s", c->id, camp_state_names[c->state],
                  camp_state_names[s]);
    c->state = s;
}

static void tick_set_state(sched_tick_t *t, tick_state_t s)
{
    if (log_enabled(LOG_LEVEL_DEBUG))
        log_debug("scheduling campaign slots", "tick %s: %s -> %s", t->id, tick_state_names[t->state],
                  tick_state_names[s]);
    t->state = s;
}

static void camps_clear(sched_tick_t *t)
{
    for (size_t i = 0; i < t->ncamps; i++) {
        camp_t *c = &t->camps[i];
        if (c->lc != NULL)
            t->sched->llm.cancel(c->lc);
        db_step_clear(&c->step);
        free(c->subject);
        free(c->err);
        free_strings(c->avoid, c->navoid);
        free_strings(c->titles, c->ntitles);
    }
    free(t->camps);
    t->camps = NULL;
    t->ncamps = t->next_camp = t->running = 0;
}

/* ---- the campaign machine ---- */

static void camp_fail(camp_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void camp_fail(camp_t *c, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    free(c->err);
    c->err = xstrdup(msg);
}

static void on_titles(llm_call_t *call)
{
    camp_t *c = call->data;
    c->lc = NULL;
    if (call->err != NULL) {
        camp_fail(c, "Title generation failed: %s", call->err);
    } else {
        size_t want = (size_t)c->due;
        char err[256];
        c->titles = xcalloc(want, sizeof(char *));
        const char *content = call->content != NULL ? call->content : "";
        int kept = titles_parse(content, strlen(content), want, (const char *const *)c->avoid, c->navoid,
                                c->titles, err, sizeof(err));
        if (kept < 0)
            camp_fail(c, "Title generation failed: %s", err);
        else
            c->ntitles = (size_t)kept;
        if (kept >= 0 && (size_t)kept < want)
            camp_fail(c, "Title generation failed: the LLM gave %d usable new title(s) for %zu due slot(s)",
                      kept, want);
    }
    c->ready = 1;
    camp_advance(c);
}

static void on_committed(db_step_t *step)
{
    camp_t *c = step->data;
    c->ready = 1;
    camp_advance(c);
}

/* Counts the campaign's commit in the tick's report. */
static void count_commit(camp_t *c)
{
    sched_tick_t *t = c->tick;
    if (c->step.err != NULL) {
        log_warn("scheduling campaign slots", "campaign %s: the transaction failed: %s; its slots stay due",
                 c->id, c->step.err);
        t->report.failed++;
    } else if (c->step.rows == 1) {
        const PGresult *res = c->step.res;
        int created = (int)db_int(res, 0, "created"), pending = (int)db_int(res, 0, "pending");
        const char *status = db_value(res, 0, "status");
        t->report.articles_created += created;
        t->report.slots_pending += pending;
        if (pending > 0)
            t->report.failed++;
        if (status != NULL && strcmp(status, "completed") == 0)
            t->report.completed++;
        if (status != NULL && strcmp(status, "paused") == 0 && db_value(res, 0, "pause_reason") != NULL)
            t->report.paused++;
        if (pending > 0)
            log_warn("scheduling campaign slots",
                     "campaign %s: %d article(s) created, %d slot(s) left due: %s", c->id, created, pending,
                     c->err != NULL ? c->err : "no usable title");
        else if (created > 0 || (status != NULL && strcmp(status, "active") != 0))
            log_info("scheduling campaign slots", "campaign %s: %d article(s) created, campaign %s", c->id,
                     created, status != NULL ? status : "gone");
    }
    db_step_clear(&c->step);
}

static void camp_advance(camp_t *c)
{
    sched_tick_t *t = c->tick;
    app_t *app = t->sched->app;
    for (;;) {
        switch (c->state) {
        case CAMP_IDLE:
            camp_set_state(c, CAMP_TITLES);
            break;
        case CAMP_TITLES: {
            /* Nothing due (handled meanwhile, or only missed slots): the commit still moves the cursor. */
            if (c->due <= 0) {
                camp_set_state(c, CAMP_COMMIT);
                break;
            }
            if (t->sched->llm.ctx == NULL) {
                camp_fail(c, "Title generation failed: no LLM is configured (LLM_BASE_URL is not set)");
                camp_set_state(c, CAMP_COMMIT);
                break;
            }
            char *prompt =
                titles_prompt(c->subject, (size_t)c->due, (const char *const *)c->avoid, c->navoid);
            llm_message_t msgs[] = {
                {"system", "You write titles for SEO articles. You reply with JSON only."}, {"user", prompt}};
            camp_set_state(c, CAMP_TITLING);
            c->ready = 0;
            c->lc = t->sched->llm.chat(t->sched->llm.ctx, msgs, 2, 1, 0, on_titles, c);
            free(prompt);
            if (c->lc == NULL) {
                camp_fail(c, "Title generation failed: the LLM client is shutting down");
                camp_set_state(c, CAMP_COMMIT);
                break;
            }
            return;
        }
        case CAMP_TITLING:
            if (!c->ready)
                return;
            camp_set_state(c, CAMP_COMMIT);
            break;
        case CAMP_COMMIT: {
            const config_t *cfg = app->cfg;
            char lead[16], grace[16], credits[16];
            snprintf(lead, sizeof(lead), "%d", cfg->generation_lead_s);
            snprintf(grace, sizeof(grace), "%d", cfg->slot_grace_s);
            snprintf(credits, sizeof(credits), "%d", cfg->credits_per_article);
            buf_t titles = BUF_INIT, ids = BUF_INIT;
            buf_putc(&titles, '[');
            buf_putc(&ids, '{');
            for (size_t i = 0; i < c->ntitles; i++) {
                char id[37];
                crypto_uuid4(id);
                if (i > 0) {
                    buf_putc(&titles, ',');
                    buf_putc(&ids, ',');
                }
                json_put_string(&titles, c->titles[i]);
                buf_puts(&ids, id);
            }
            buf_putc(&titles, ']');
            buf_putc(&ids, '}');
            const char *commit[] = {c->id, t->at, lead, grace, titles.data, ids.data, credits, t->id, c->err};
            const char *enqueue[] = {ids.data, JOBS_KIND_GENERATE};
            db_stmt_t stmts[] = {{NULL, NO_JIT_SQL, 0, NULL},
                                 {"sched_commit", NULL, 9, commit},
                                 {"sched_enqueue", NULL, 2, enqueue}};
            c->ready = 0;
            int rc = db_step_start(&c->step, stmts, 3, 1);
            buf_free(&titles);
            buf_free(&ids);
            if (rc != 0) {
                log_warn("scheduling campaign slots", "campaign %s: the database is busy; its slots stay due",
                         c->id);
                t->report.failed++;
                camp_set_state(c, CAMP_DONE);
                break;
            }
            camp_set_state(c, CAMP_COMMITTING);
            return;
        }
        case CAMP_COMMITTING:
            if (!c->ready)
                return;
            count_commit(c);
            camp_set_state(c, CAMP_DONE);
            break;
        case CAMP_DONE:
            /* The last thing this machine does: the tick may move on and claim again from here. */
            t->running--;
            tick_advance(t);
            return;
        }
    }
}

/* ---- the tick machine ---- */

static void on_tick_closed(uv_handle_t *h)
{
    sched_tick_t *t = h->data;
    sched_t *s = t->sched;
    camps_clear(t);
    db_step_clear(&t->step);
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        s->ticks = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    free(t);
    sched_maybe_closed(s);
}

/* Stops every operation of the tick; what was committed stays committed. Its remaining leases are ended by a
 * query that owes nothing to the tick (no data pointer), so it may outlive it; the pool finishes it before
 * closing. */
static void stop_work(sched_tick_t *t, int leased)
{
    if (leased) {
        const char *params[] = {t->id};
        if (db_target_fire(&t->sched->db, "ending the leases of a stopped tick", "sched_release", 1,
                           params) != 0)
            log_warn("scheduling campaign slots",
                     "tick %s: the database is busy; its leases expire by themselves", t->id);
    }
    db_step_cancel(&t->step);
    for (size_t i = 0; i < t->ncamps; i++) {
        camp_t *c = &t->camps[i];
        if (c->lc != NULL)
            t->sched->llm.cancel(c->lc);
        c->lc = NULL;
        db_step_cancel(&c->step);
    }
}

/* Asks the tick to stop early; the transition is the machine's. */
static void tick_abort(sched_tick_t *t, const char *why)
{
    if (t->abort_why == NULL)
        t->abort_why = why;
    tick_advance(t);
}

static void on_tick_timer(uv_timer_t *timer)
{
    sched_tick_t *t = timer->data;
    if (t->state != TICK_START) {
        log_warn("scheduling campaign slots",
                 "tick %s: deadline passed with %zu campaign(s) in flight; stopping it", t->id, t->running);
        tick_abort(t, t->sched->stopping ? "shutting down" : "deadline passed");
        return;
    }
    if (t->sched->stopping) {
        tick_abort(t, "shutting down");
        return;
    }
    uint64_t now = uv_now(timer->loop);
    if (uv_timer_start(&t->timer, on_tick_timer, t->deadline_ms > now ? t->deadline_ms - now : 0, 0) != 0)
        abort(); /* only for a closing handle: a bug */
    tick_set_state(t, TICK_CLAIM);
    tick_advance(t);
}

static void on_claimed(db_step_t *step)
{
    sched_tick_t *t = step->data;
    t->ready = 1;
    tick_advance(t);
}

/* The claim's rows into campaign machines. */
static void load_camps(sched_tick_t *t)
{
    const PGresult *claim = t->step.res;
    int rows = claim != NULL ? PQntuples(claim) : 0;
    t->claim_full = rows >= SCHED_CLAIM_BATCH;
    t->camps = xcalloc(rows > 0 ? (size_t)rows : 1, sizeof(camp_t));
    t->ncamps = (size_t)rows;
    for (int i = 0; i < rows; i++) {
        camp_t *c = &t->camps[i];
        c->tick = t;
        c->state = CAMP_IDLE;
        db_step_init(&c->step, &t->sched->db, on_committed, c);
        snprintf(c->id, sizeof(c->id), "%s", db_value(claim, i, "id"));
        const char *topic = db_value(claim, i, "topic");
        const char *desc = db_value(claim, i, "description");
        /* The topic is the subject; a description refines it on a line of its own, so a model (and the stub,
         * which reads the "Subject:" line) still sees the topic alone as the subject. */
        if (desc != NULL && desc[0] != '\0')
            c->subject = xasprintf("%s\nCampaign description: %s", topic, desc);
        else
            c->subject = xstrdup(topic);
        int64_t due = db_int(claim, i, "due");
        c->due = (int)(due > SCHED_MAX_TITLES ? SCHED_MAX_TITLES : due);
        const char *avoid = db_value(claim, i, "avoid");
        char perr[128];
        yajl_val list = avoid != NULL ? json_parse(avoid, strlen(avoid), perr, sizeof(perr)) : NULL;
        if (list != NULL && YAJL_IS_ARRAY(list) && list->u.array.len > 0) {
            c->avoid = xcalloc(list->u.array.len, sizeof(char *));
            for (size_t k = 0; k < list->u.array.len && c->navoid < SCHED_AVOID_MAX; k++)
                if (YAJL_IS_STRING(list->u.array.values[k]))
                    c->avoid[c->navoid++] = xstrdup(list->u.array.values[k]->u.string);
        }
        if (list != NULL)
            yajl_tree_free(list);
    }
    t->report.campaigns += rows;
}

static void tick_advance(sched_tick_t *t)
{
    if (t->advancing)
        return;
    t->advancing = 1;
    for (;;) {
        if (t->abort_why != NULL && t->state != TICK_ABORT && t->state != TICK_DONE)
            tick_set_state(t, TICK_ABORT);
        switch (t->state) {
        case TICK_START:
            t->advancing = 0;
            return;
        case TICK_CLAIM: {
            const config_t *cfg = t->sched->app->cfg;
            char lead[16], grace[16], lease[16], batch[16];
            snprintf(lead, sizeof(lead), "%d", cfg->generation_lead_s);
            snprintf(grace, sizeof(grace), "%d", cfg->slot_grace_s);
            snprintf(lease, sizeof(lease), "%d", lease_s(cfg));
            snprintf(batch, sizeof(batch), "%d", SCHED_CLAIM_BATCH);
            const char *params[] = {t->at, lead, grace, t->id, lease, batch};
            db_stmt_t stmts[] = {{NULL, NO_JIT_SQL, 0, NULL}, {"sched_claim", NULL, 6, params}};
            t->ready = 0;
            t->claim_sent = 1;
            if (db_step_start(&t->step, stmts, 2, 1) != 0) {
                snprintf(t->err, sizeof(t->err), "claiming due campaigns failed: the database is busy");
                t->report.err = t->err;
                tick_set_state(t, TICK_DONE);
                break;
            }
            tick_set_state(t, TICK_CLAIMING);
            t->advancing = 0;
            return;
        }
        case TICK_CLAIMING:
            if (!t->ready) {
                t->advancing = 0;
                return;
            }
            /* The previous batch's machines are all done: only now is their memory released. */
            camps_clear(t);
            if (t->step.err != NULL) {
                snprintf(t->err, sizeof(t->err), "claiming due campaigns failed: %s", t->step.err);
                t->report.err = t->err;
                tick_set_state(t, TICK_DONE);
                break;
            }
            load_camps(t);
            tick_set_state(t, t->ncamps > 0 ? TICK_RUN : TICK_DONE);
            break;
        case TICK_RUN:
            while (t->running < SCHED_PARALLEL && t->next_camp < t->ncamps) {
                camp_t *c = &t->camps[t->next_camp++];
                t->running++;
                camp_advance(c);
            }
            if (t->running > 0 || t->next_camp < t->ncamps) {
                t->advancing = 0;
                return;
            }
            tick_set_state(t, t->claim_full ? TICK_CLAIM : TICK_DONE);
            break;
        case TICK_ABORT:
            stop_work(t, t->claim_sent);
            snprintf(t->err, sizeof(t->err), "%s", t->abort_why);
            t->report.err = t->err;
            tick_set_state(t, TICK_DONE);
            break;
        case TICK_DONE: {
            /* Reached once: the timer is closed here and the tick freed in its close callback. */
            if (uv_is_closing((uv_handle_t *)&t->timer))
                return;
            if (uv_timer_stop(&t->timer) != 0)
                abort();
            sched_t *s = t->sched;
            if (s->timer_tick == t)
                s->timer_tick = NULL;
            sched_tick_cb cb = t->cb;
            t->cb = NULL;
            uv_close((uv_handle_t *)&t->timer, on_tick_closed);
            if (cb != NULL)
                cb(&t->report, t->data);
            return;
        }
        }
    }
}

sched_tick_t *sched_tick(sched_t *s, int64_t at_us, sched_tick_cb cb, void *data)
{
    if (s == NULL || s->stopping)
        return NULL;
    sched_tick_t *t = xcalloc(1, sizeof(*t));
    t->sched = s;
    t->state = TICK_START;
    t->at_us = at_us;
    time_format_iso(at_us, t->at, sizeof(t->at));
    snprintf(t->id, sizeof(t->id), "%s:%llu", s->proc_id, (unsigned long long)++s->seq);
    t->cb = cb;
    t->data = data;
    /* The deadline ends the tick before its first leases expire, so no other tick takes over a campaign this
     * one is still working on. */
    int deadline_s = lease_s(s->app->cfg) - 60;
    t->deadline_ms =
        uv_now(s->app->loop) + (s->tick_deadline_ms ? s->tick_deadline_ms : (uint64_t)deadline_s * 1000);
    db_step_init(&t->step, &s->db, on_claimed, t);
    if (uv_timer_init(s->app->loop, &t->timer) != 0)
        abort(); /* only fails for an invalid loop */
    t->timer.data = t;
    if (uv_timer_start(&t->timer, on_tick_timer, 0, 0) != 0)
        abort();
    t->next = s->ticks;
    if (s->ticks != NULL)
        s->ticks->prev = t;
    s->ticks = t;
    return t;
}

void sched_set_ports(sched_t *s, const db_target_t *db, const llm_port_t *llm, uint64_t tick_deadline_ms)
{
    s->db = *db;
    s->llm = *llm;
    s->tick_deadline_ms = tick_deadline_ms;
}

void sched_tick_cancel(sched_tick_t *t)
{
    t->cb = NULL;
    tick_abort(t, "cancelled");
}

/* ---- the periodic tick and the scheduler's lifetime ---- */

static void on_timer_tick_done(const sched_report_t *r, void *data)
{
    (void)data;
    if (r->err != NULL)
        log_warn("scheduling campaign slots",
                 "tick stopped early (%s): %d campaign(s), %d article(s) created", r->err, r->campaigns,
                 r->articles_created);
    else if (r->campaigns > 0)
        log_info(
            "scheduling campaign slots",
            "tick done: %d campaign(s), %d article(s) created, %d slot(s) left due, %d paused, %d completed",
            r->campaigns, r->articles_created, r->slots_pending, r->paused, r->completed);
}

static void on_interval(uv_timer_t *timer)
{
    sched_t *s = timer->data;
    /* Ticks of one process never overlap: a slow tick (a hanging LLM) delays the next instead of piling up.
     */
    if (s->timer_tick != NULL) {
        log_debug("scheduling campaign slots", "the previous tick is still running; skipping this one");
        return;
    }
    s->timer_tick = sched_tick(s, time_now_us(), on_timer_tick_done, s);
}

sched_t *sched_create(app_t *app)
{
    sched_t *s = xcalloc(1, sizeof(*s));
    s->app = app;
    s->db = db_target_pool(app->db);
    s->llm = llm_port(app->llm);
    char host[64] = "host";
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    /* The nonce keeps tick ids unique across restarts that reuse a pid: a tick skips campaigns whose lease
     * names its own id. */
    unsigned char nonce[4];
    crypto_random(nonce, sizeof(nonce));
    snprintf(s->proc_id, sizeof(s->proc_id), "%s:%d:%02x%02x%02x%02x", host, (int)getpid(), nonce[0],
             nonce[1], nonce[2], nonce[3]);
    if (uv_timer_init(app->loop, &s->timer) != 0)
        abort();
    s->timer.data = s;
    return s;
}

void sched_start(sched_t *s)
{
    uint64_t interval_ms = (uint64_t)s->app->cfg->scheduler_interval_s * 1000;
    if (uv_timer_start(&s->timer, on_interval, interval_ms, interval_ms) != 0)
        abort();
    s->started = 1;
    log_info("scheduling campaign slots", "ticking every %d s (lead %d s, grace %d s)",
             s->app->cfg->scheduler_interval_s, s->app->cfg->generation_lead_s, s->app->cfg->slot_grace_s);
}

static void on_sched_closed(uv_handle_t *h)
{
    sched_t *s = h->data;
    void (*cb)(void *) = s->stop_cb;
    void *data = s->stop_data;
    free(s);
    cb(data);
}

/* Once stopping and every tick is freed, the periodic timer is closed last and the stop callback runs. */
static void sched_maybe_closed(sched_t *s)
{
    if (!s->stopping || s->ticks != NULL || uv_is_closing((uv_handle_t *)&s->timer))
        return;
    uv_close((uv_handle_t *)&s->timer, on_sched_closed);
}

void sched_stop(sched_t *s, uint64_t timeout_ms, void (*cb)(void *data), void *data)
{
    s->stopping = 1;
    s->stop_cb = cb;
    s->stop_data = data;
    if (uv_timer_stop(&s->timer) != 0)
        abort();
    /* Ticks in flight get the drain's time to finish; their deadline is pulled in to it. */
    uint64_t now = uv_now(s->app->loop);
    for (sched_tick_t *t = s->ticks; t != NULL; t = t->next) {
        if (t->state == TICK_DONE || t->state == TICK_START)
            continue;
        if (t->deadline_ms > now + timeout_ms) {
            t->deadline_ms = now + timeout_ms;
            if (uv_timer_start(&t->timer, on_tick_timer, timeout_ms, 0) != 0)
                abort();
        }
    }
    sched_maybe_closed(s);
}

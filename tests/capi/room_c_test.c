/* Rooms through the C API from C99: three contexts join a room on a real parley-relay,
 * see each other in PARLEY_EVENT_ROOM_UPDATE and parley_room_members, exchange frames
 * (PARLEY_EVENT_ROOM_FRAME carries the payload, the sender and its stream), and leave; plus
 * the misuse cases of the room functions. argv[1]: the parley-relay executable. */
#include <parley/parley.h>

#include "check.h"

#include "relay_child.h"


static relay_child relay;

typedef struct party {
  parley_identity *id;
  parley_context *ctx;
  parley_room *room;
  char fp[PARLEY_FINGERPRINT_BUF_LEN];
  uint32_t stream;
} party;

/* Waits up to 10 s for an event of `type` on the party's room (for ROOM_UPDATE: with
 * `members` members). Returns 1 with the event copied (data into `buf`), or 0. */
static int wait_room(party *p, int type, uint32_t members, parley_event *out, uint8_t *buf) {
  const long long deadline = relay_child_now_ms() + 10000;
  long long left;
  while ((left = deadline - relay_child_now_ms()) > 0) {
    parley_event ev;
    if (parley_context_wait_event(p->ctx, &ev, (uint32_t)left) != 1) continue;
    if (ev.type != type || ev.room != p->room) continue;
    if (type == PARLEY_EVENT_ROOM_UPDATE && ev.member_count != members) continue;
    CHECK(ev.user_data == parley_room_user_data(p->room));
    *out = ev;
    if (buf && ev.len) memcpy(buf, ev.data, ev.len);
    return 1;
  }
  return 0;
}

static void start_party(party *p) {
  parley_context_config cfg;
  parley_event ev;
  memset(p, 0, sizeof *p);
  CHECK(parley_identity_generate(&p->id) == PARLEY_OK);
  parley_context_config_init(&cfg);
  cfg.relay_address = relay.address;
  cfg.relay_fingerprint = relay.fingerprint;
  cfg.bind_address = "127.0.0.1:0";
  CHECK(parley_context_create(p->id, &cfg, &p->ctx) == PARLEY_OK);
  CHECK(parley_context_fingerprint(p->ctx, p->fp, sizeof p->fp) == PARLEY_OK);
  for (;;) {
    if (parley_context_wait_event(p->ctx, &ev, 10000) != 1) {
      CHECK(!"registered");
      return;
    }
    if (ev.type == PARLEY_EVENT_RELAY_STATE && ev.relay_state == PARLEY_RELAY_REGISTERED) return;
  }
}

int main(int argc, char **argv) {
  party p[3];
  char room_id[PARLEY_ROOM_ID_BUF_LEN];
  parley_room *dup = (parley_room *)1;
  parley_room_member members[3];
  size_t count;
  parley_event ev;
  uint8_t buf[PARLEY_DATAGRAM_MAX];
  static const char hello[] = "sealed-by-the-host";
  int i, j;

  if (argc < 2 || relay_child_start(&relay, argv[1]) != 0) {
    fprintf(stderr, "could not start the relay\n");
    return 1;
  }
  CHECK(parley_room_id_generate(room_id, sizeof room_id) == PARLEY_OK);
  CHECK(strlen(room_id) == PARLEY_ROOM_ID_HEX_LEN);
  CHECK(parley_room_id_generate(room_id, 8) == PARLEY_ERR_BUFFER_TOO_SMALL);
  CHECK(parley_room_id_generate(room_id, sizeof room_id) == PARLEY_OK);
  for (i = 0; i < 3; ++i) start_party(&p[i]);

  CHECK(parley_room_join(p[0].ctx, "not-a-room", &dup) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(dup == NULL);
  for (i = 0; i < 3; ++i) {
    CHECK(parley_room_join(p[i].ctx, room_id, &p[i].room) == PARLEY_OK);
    CHECK(parley_room_set_user_data(p[i].room, &p[i]) == PARLEY_OK); /* events carry it */
  }
  CHECK(parley_room_join(p[0].ctx, room_id, &dup) == PARLEY_ERR_INVALID_ARGUMENT); /* twice */
  for (i = 0; i < 3; ++i) {
    CHECK(wait_room(&p[i], PARLEY_EVENT_ROOM_UPDATE, 3, &ev, NULL));
    p[i].stream = ev.stream_id;
    CHECK(ev.stream_id != 0);
  }
  /* Everyone sees the same three members, with the streams they announced. */
  count = 1;
  CHECK(parley_room_members(p[1].room, members, &count) == PARLEY_ERR_BUFFER_TOO_SMALL);
  CHECK(count == 3);
  CHECK(parley_room_members(p[1].room, members, &count) == PARLEY_OK);
  for (i = 0; i < 3; ++i) {
    int found = 0;
    for (j = 0; j < 3; ++j) {
      if (strcmp(members[j].fingerprint, p[i].fp) == 0 && members[j].stream_id == p[i].stream) {
        found = 1;
      }
    }
    CHECK(found);
  }

  /* A frame from p[0] reaches p[1] and p[2] as it was sent, named by sender and stream. */
  CHECK(parley_room_send(p[0].room, 1, 960, 0, hello, sizeof hello) == PARLEY_OK);
  for (i = 1; i < 3; ++i) {
    CHECK(wait_room(&p[i], PARLEY_EVENT_ROOM_FRAME, 0, &ev, buf));
    CHECK(ev.len == sizeof hello && memcmp(buf, hello, sizeof hello) == 0);
    CHECK(strcmp(ev.peer, p[0].fp) == 0);
    CHECK(ev.stream_id == p[0].stream);
    CHECK(ev.sequence == 1 && ev.timestamp == 960);
  }
  /* The relay restarts (same address, same identity): every context reconnects, joins the
   * room again, and frames flow with the new stream ids. */
  CHECK(relay_child_restart(&relay, argv[1]) == 0);
  for (i = 0; i < 3; ++i) {
    CHECK(wait_room(&p[i], PARLEY_EVENT_ROOM_UPDATE, 3, &ev, NULL));
    p[i].stream = ev.stream_id;
  }
  CHECK(parley_room_send(p[0].room, 2, 1920, 0, hello, sizeof hello) == PARLEY_OK);
  CHECK(wait_room(&p[1], PARLEY_EVENT_ROOM_FRAME, 0, &ev, buf));
  CHECK(ev.stream_id == p[0].stream && ev.sequence == 2);

  CHECK(parley_room_send(p[0].room, 2, 1920, 5, hello, 4) == PARLEY_ERR_INVALID_ARGUMENT);
  CHECK(parley_room_send(p[0].room, 2, 1920, 0, buf, PARLEY_DATAGRAM_MAX + 1) ==
        PARLEY_ERR_MESSAGE_TOO_LARGE);
  CHECK(parley_room_send(p[0].room, 2, 1920, 0, NULL, 4) == PARLEY_ERR_INVALID_ARGUMENT);

  /* The relay's per-client room limit (4 by default): the fifth join is refused, with an
   * error event naming the handle, which then counts as left. */
  {
    parley_room *extra[4];
    char id[PARLEY_ROOM_ID_BUF_LEN];
    int refused = 0;
    const long long deadline = relay_child_now_ms() + 10000;
    for (i = 0; i < 4; ++i) {
      CHECK(parley_room_id_generate(id, sizeof id) == PARLEY_OK);
      CHECK(parley_room_join(p[0].ctx, id, &extra[i]) == PARLEY_OK);
    }
    while (!refused && relay_child_now_ms() < deadline) {
      if (parley_context_wait_event(p[0].ctx, &ev, 100) != 1) continue;
      if (ev.type == PARLEY_EVENT_ERROR && ev.room != NULL) {
        CHECK(ev.room == extra[3]);
        CHECK(ev.error == PARLEY_ERR_LIMIT_REACHED);
        refused = 1;
      }
      if (ev.type == PARLEY_EVENT_ROOM_UPDATE) CHECK(ev.room != extra[3]);
    }
    CHECK(refused);
    CHECK(parley_room_send(extra[3], 1, 0, 0, hello, 4) == PARLEY_ERR_NOT_A_MEMBER);
    CHECK(parley_room_leave(extra[3]) == PARLEY_ERR_NOT_A_MEMBER);
    for (i = 0; i < 4; ++i) parley_room_destroy(extra[i]);
  }

  /* p[2] leaves: the others see two members; its handle refuses further use. */
  CHECK(parley_room_leave(p[2].room) == PARLEY_OK);
  CHECK(parley_room_leave(p[2].room) == PARLEY_ERR_NOT_A_MEMBER);
  CHECK(parley_room_send(p[2].room, 3, 0, 0, hello, 4) == PARLEY_ERR_NOT_A_MEMBER);
  for (i = 0; i < 2; ++i) CHECK(wait_room(&p[i], PARLEY_EVENT_ROOM_UPDATE, 2, &ev, NULL));
  /* Left, the id may be joined again: a new handle, and the others see three again. */
  {
    parley_room *again = NULL;
    CHECK(parley_room_join(p[2].ctx, room_id, &again) == PARLEY_OK);
    CHECK(again != NULL && again != p[2].room);
    for (i = 0; i < 2; ++i) CHECK(wait_room(&p[i], PARLEY_EVENT_ROOM_UPDATE, 3, &ev, NULL));
    CHECK(parley_room_leave(again) == PARLEY_OK);
    for (i = 0; i < 2; ++i) CHECK(wait_room(&p[i], PARLEY_EVENT_ROOM_UPDATE, 2, &ev, NULL));
    parley_room_destroy(again);
  }
  CHECK(parley_room_set_user_data(p[2].room, &p[2]) == PARLEY_OK);
  CHECK(parley_room_user_data(p[2].room) == &p[2]);
  CHECK(parley_room_destroy(p[2].room) == PARLEY_OK);
  CHECK(parley_room_destroy(p[2].room) == PARLEY_ERR_INVALID_HANDLE); /* ignored, logged */
  CHECK(parley_room_user_data(p[2].room) == NULL);
  CHECK(parley_room_leave(p[2].room) == PARLEY_ERR_INVALID_HANDLE);

  /* p[1]'s context goes away with its room handle still held: requests say so. */
  CHECK(parley_context_destroy(p[1].ctx) == PARLEY_OK);
  CHECK(wait_room(&p[0], PARLEY_EVENT_ROOM_UPDATE, 1, &ev, NULL));
  CHECK(parley_room_send(p[1].room, 9, 0, 0, hello, 4) == PARLEY_ERR_CLOSED);
  count = 3;
  CHECK(parley_room_members(p[1].room, members, &count) == PARLEY_OK); /* the last known */
  parley_room_destroy(p[1].room);

  parley_room_destroy(p[0].room); /* leaves */
  for (i = 0; i < 3; ++i) {
    if (i != 1) CHECK(parley_context_destroy(p[i].ctx) == PARLEY_OK);
    parley_identity_destroy(p[i].id);
  }
  relay_child_stop(&relay);
  return check_report();
}

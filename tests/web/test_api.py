"""/api/v1 and the console's sign-in against a real `lore console` process: authentication, CSRF, answers
streamed over server-sent events, votes recorded as from Slack, and the DM permissions of every route."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from harness.canary_kb import CANARIES, MEMBER, OUTSIDER, PUBLIC_URI, QUESTION, SECRET_CHANNEL
from harness.openai_server import FakeOpenAI
from lore.config import Settings
from lore.db import raw_connection
from lore.tokens import create_token
from tests.web.conftest import ADMIN, ATTACHED, ATTACHED_CODE, BUDGET_QUESTION, Console, leaked
from web.auth import COOKIE, SIGNIN_COOKIE, Keyring

SECRET_CANARY = CANARIES[SECRET_CHANNEL][0]


def count(settings: Settings, table: str) -> int:
    with raw_connection(settings) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


# What a browser sends for an address the person typed, pasted, or had `lore console` open: a sign-in link signs in
# at once only then (web.pages.index).
TYPED = {"Sec-Fetch-Site": "none"}


def session(console: Console, token: str | None = None) -> tuple[httpx.Client, str]:
    """A client signed in through /console/?token=…, and the CSRF token its pages carry."""
    client = console.client()
    response = client.get("/console/", params={"token": token or console.token}, headers=TYPED)
    assert response.status_code == 303, response.text
    assert "token" not in response.headers["location"]
    page = client.get("/console/ask")
    assert page.status_code == 200
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found
    return client, found.group(1)


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        name = next((line[6:].strip() for line in block.splitlines() if line.startswith("event:")), None)
        data = "".join(line[5:].strip() for line in block.splitlines() if line.startswith("data:"))
        if name and data:
            events.append((name, json.loads(data)))
    return events


def test_without_a_valid_token_every_route_is_401_and_nothing_runs(
    console: Console, kb: Settings, fake_openai: FakeOpenAI
) -> None:
    anonymous = console.client()
    forged = console.client(cookies={COOKIE: "eyJ1IjoiVTBBRE1JTiIsImEiOnRydWV9.forged"})
    wrong = console.bearer("lore_pat_not-a-real-token")
    for client in (anonymous, forged, wrong):
        calls = [
            client.get("/api/v1/search", params={"q": "Nightjar"}),
            client.post("/api/v1/ask", json={"question": QUESTION}),
            client.post("/api/v1/answers/1/vote", json={"value": "up"}),
            client.get("/api/v1/answers/1"),
            client.post("/api/v1/ingest", json={"urls": ["https://example.com/"]}),
            client.get("/api/v1/jobs/1"),
        ]
        assert [r.status_code for r in calls] == [401] * 6, [r.text for r in calls]
        assert all("error" in r.json() for r in calls)
    assert fake_openai.completions == []
    assert count(kb, "answers") == 0 and count(kb, "ingest_jobs") == 0
    page = forged.get("/console/knowledge")
    assert page.status_code == 401 and "Sign in to Lore" in page.text
    assert console.client().get("/console/", params={"token": "wrong"}).status_code == 401


def test_expired_session_and_signature_checked(console: Console, kb: Settings) -> None:
    keyring = Keyring(kb)
    keyring.session_s = -10  # already expired when made
    expired = console.client(cookies={COOKIE: keyring.session_cookie("local", admin=True)})
    assert expired.get("/api/v1/search", params={"q": "x"}).status_code == 401
    assert "expired" in expired.get("/console/ask").text
    keyring.session_s = 3600
    good = keyring.session_cookie("U0MEMBER", admin=False)
    payload, _, signature = good.partition(".")
    tampered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature
    assert console.client(cookies={COOKIE: tampered}).get("/api/v1/search", params={"q": "x"}).status_code == 401
    assert console.client(cookies={COOKIE: good}).get("/api/v1/search", params={"q": "Nightjar"}).status_code == 200


def test_sign_in_sets_a_safe_cookie_and_drops_the_token(console: Console) -> None:
    client = console.client()
    response = client.get("/console/", params={"token": console.token}, headers=TYPED)
    assert response.status_code == 303 and response.headers["location"] == "/console/ask"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie  # plain http on localhost
    assert response.headers["referrer-policy"] == "no-referrer"
    page = client.get("/console/ask")
    assert page.status_code == 200 and 'data-user="local"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def sets_session(response: httpx.Response) -> bool:
    return any(h.startswith(COOKIE + "=") for h in response.headers.get_list("set-cookie"))


def signin_form_token(client: httpx.Client) -> str:
    """The sign-in page's form token (and, in `client`, the pre-session cookie it goes with)."""
    page = client.get("/console/signin")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert page.status_code == 200 and found and SIGNIN_COOKIE in client.cookies, page.text[:500]
    return found.group(1)


def test_the_sign_in_form_refuses_a_post_it_did_not_serve(console: Console, kb: Settings) -> None:
    """Login CSRF: a page on another site that posts its author's token to the sign-in form signs nobody in."""
    attackers = create_token(kb, user_id=OUTSIDER).token
    victim = console.client()
    attacker = console.client()
    attacker_form = signin_form_token(attacker)  # a valid form token, but for the attacker's own browser
    forged = [
        victim.post("/console/signin", data={"token": attackers}),  # no form token, no pre-session cookie
        victim.post("/console/signin", data={"token": attackers, "csrf_token": attacker_form}),  # not this browser's
    ]
    form = signin_form_token(victim)  # the victim has the sign-in page open: a cookie of their own
    forged += [
        victim.post("/console/signin", data={"token": attackers, "csrf_token": attacker_form}),
        victim.post("/console/signin", data={"token": attackers, "csrf_token": "0" * 40}),
        victim.post("/console/signin", data={"token": attackers}),
        # Even with the right pair, what the browser marks as sent from another site (or a sibling subdomain).
        victim.post(
            "/console/signin", data={"token": attackers, "csrf_token": form}, headers={"Sec-Fetch-Site": "cross-site"}
        ),
        victim.post(
            "/console/signin", data={"token": attackers, "csrf_token": form}, headers={"Sec-Fetch-Site": "same-site"}
        ),
    ]
    assert [r.status_code for r in forged] == [403] * len(forged), [r.text[:300] for r in forged]
    assert not any(sets_session(r) for r in forged)
    assert all("sign-in refused" in r.text for r in forged)
    assert victim.get("/console/ask").status_code == 401  # still signed out
    assert console.service.output().count("console_sign_in_refused reason=csrf") >= len(forged)
    # The form the console served, posted from its own page, signs in.
    mine = victim.post(
        "/console/signin", data={"token": console.token, "csrf_token": form}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert mine.status_code == 303 and sets_session(mine)
    assert 'data-user="local"' in victim.get("/console/ask").text


def test_a_sign_in_link_from_elsewhere_asks_before_signing_in(console: Console, kb: Settings) -> None:
    """/console/?token=T opened from another site's link (or by a browser that does not say where from) shows
    whose token it is and a button, and signs nobody in until it is pressed."""
    attackers = create_token(kb, user_id=OUTSIDER).token
    for site in ("cross-site", "same-site", None):
        victim = console.client()
        page = victim.get("/console/", params={"token": attackers}, headers={"Sec-Fetch-Site": site} if site else {})
        assert page.status_code == 200 and not sets_session(page), page.text[:500]
        assert f'id="signin-as">{OUTSIDER}<' in page.text
        assert victim.get("/console/ask").status_code == 401
    pressed = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert pressed
    signed = victim.post(
        "/console/signin",
        data={"token": attackers, "csrf_token": pressed.group(1)},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert signed.status_code == 303 and sets_session(signed)
    assert f'data-user="{OUTSIDER}"' in victim.get("/console/ask").text
    # Typed, pasted or opened by `lore console` (none), or linked from the console itself: at once, as before.
    for site in ("none", "same-origin"):
        direct = console.client().get("/console/", params={"token": console.token}, headers={"Sec-Fetch-Site": site})
        assert direct.status_code == 303 and sets_session(direct)


def test_post_with_the_session_needs_the_csrf_token(console: Console, kb: Settings) -> None:
    client, csrf = session(console)
    refused = client.post("/api/v1/ask", json={"question": QUESTION})
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    wrong = client.post("/api/v1/ask", json={"question": QUESTION}, headers={"X-CSRF-Token": "0" * 40})
    assert wrong.status_code == 403
    assert count(kb, "answers") == 0
    accepted = client.post("/api/v1/ask", json={"question": QUESTION}, headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 200, accepted.text
    assert set(accepted.json()) == {"answer_id", "answer", "citations", "model"}


def test_ask_streams_tokens_then_the_answer_with_its_passages(console: Console, kb: Settings) -> None:
    client = console.bearer()
    stream = {"Accept": "text/event-stream"}
    with client.stream("POST", "/api/v1/ask", json={"question": QUESTION}, headers=stream) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        body = "".join(r.iter_text())
    events = sse_events(body)
    names = [name for name, _ in events]
    assert names[-1] == "done" and names.count("token") >= 2, names
    streamed = "".join(data["text"] for name, data in events if name == "token")
    done = events[-1][1]
    assert streamed == done["answer"] == "Project Nightjar is the new mobile app [1]; the team meets on Tuesdays."
    assert done["citations"] == [{"uri": PUBLIC_URI, "title": "Project Nightjar"}]
    assert done["passages"][0]["number"] == 1 and "mobile app" in done["passages"][0]["text"]
    with raw_connection(kb) as conn:
        sql = "SELECT surface, user_id, private FROM answers WHERE id = %s"
        row = conn.execute(sql, (done["answer_id"],)).fetchone()
    assert row == ("web", "local", True)


def test_votes_are_recorded_as_from_slack_and_answers_are_their_askers(console: Console, kb: Settings) -> None:
    member = create_token(kb, user_id=MEMBER).token
    outsider = create_token(kb, user_id=OUTSIDER).token
    asked = console.bearer(member).post("/api/v1/ask", json={"question": QUESTION}).json()
    answer_id = asked["answer_id"]
    assert SECRET_CANARY in asked["answer"]  # the member is in the channel
    voted = console.bearer(member).post(f"/api/v1/answers/{answer_id}/vote", json={"value": "down"})
    assert voted.status_code == 200 and voted.json()["votes"] == {"up": 0, "down": 1, "mine": "down"}
    with raw_connection(kb) as conn:
        assert conn.execute("SELECT user_id, value, via FROM votes").fetchall() == [(MEMBER, -1, "web")]
    sideways = console.bearer(member).post(f"/api/v1/answers/{answer_id}/vote", json={"value": "sideways"})
    assert sideways.status_code == 400
    # Someone else's answer reads as one that does not exist, for votes too.
    other = console.bearer(outsider)
    assert other.get(f"/api/v1/answers/{answer_id}").status_code == 404
    assert other.post(f"/api/v1/answers/{answer_id}/vote", json={"value": "up"}).status_code == 404
    got = console.bearer(member).get(f"/api/v1/answers/{answer_id}").json()
    assert got["votes"]["down"] == 1 and got["question"] == QUESTION
    cleared = console.bearer(member).post(f"/api/v1/answers/{answer_id}/vote", json={"value": "clear"})
    assert cleared.json()["votes"] == {"up": 0, "down": 0, "mine": None}
    # With a 👍, the voter may name the source that answered it; a page the answer did not show records nothing.
    vote = f"/api/v1/answers/{answer_id}/vote"
    shown = asked["citations"][0]["uri"]
    for body in ({"value": "up", "source": "kb://not-shown"}, {"value": "down", "source": shown}):
        refused = console.bearer(member).post(vote, json=body)
        assert refused.status_code == 400 and "source" in refused.json()["error"]
    assert console.bearer(member).get(f"/api/v1/answers/{answer_id}").json()["votes"]["mine"] is None
    named = console.bearer(member).post(vote, json={"value": "up", "source": shown})
    assert named.status_code == 200 and named.json()["votes"]["mine"] == "up"
    with raw_connection(kb) as conn:
        assert conn.execute("SELECT user_id, source_uri FROM source_picks").fetchall() == [(MEMBER, shown)]


def test_an_outsider_sees_no_private_channel_on_any_route(console: Console, kb: Settings) -> None:
    member = create_token(kb, user_id=MEMBER).token
    outsider = create_token(kb, user_id=OUTSIDER).token
    member_answer = console.bearer(member).post("/api/v1/ask", json={"question": QUESTION}).json()["answer_id"]
    with raw_connection(kb) as conn:
        private_ids = [r[0] for r in conn.execute("SELECT id FROM documents WHERE acl <> ARRAY['public']")]
    api = console.bearer(outsider)
    seen = [
        api.get("/api/v1/search", params={"q": QUESTION, "k": 20}).text,
        api.get("/api/v1/search", params={"q": "payroll vault passphrase", "k": 20, "explain": "1"}).text,
        api.get("/api/v1/search", params={"q": QUESTION, "mode": "fulltext"}).text,
        api.post("/api/v1/ask", json={"question": QUESTION}).text,
        api.get(f"/api/v1/answers/{member_answer}").text,
    ]
    assert api.get("/api/v1/search", params={"q": "x", "channel": SECRET_CHANNEL}).status_code == 403
    pages, _ = session(console, outsider)
    seen += [
        pages.get("/console/ask").text,
        pages.get("/console/knowledge", params={"q": QUESTION}).text,
        pages.get("/console/knowledge", params={"q": "CANARY", "mode": "fulltext"}).text,
        pages.get("/console/knowledge", params={"filter": "notes"}).text,
        pages.get("/console/answers").text,
        pages.get(f"/console/answers/{member_answer}").text,
        *[pages.get(f"/console/knowledge/documents/{i}").text for i in private_ids],
    ]
    for text in seen:
        assert leaked(text) == [], text[:2000]
    assert pages.get(f"/console/knowledge/documents/{private_ids[0]}").status_code == 404
    # Admin pages are not for them, and the API's admin routes refuse them too.
    assert pages.get("/console/feedback").status_code == 403
    assert api.post("/api/v1/ingest", json={"urls": ["https://example.com/"]}).status_code == 403
    # An admin outside the channel gets the admin pages, but not what the member's private conversation said.
    console.bearer(member).post(f"/api/v1/answers/{member_answer}/vote", json={"value": "down"})
    admin_token = create_token(kb, user_id=ADMIN).token
    admin_api = console.bearer(admin_token)
    hidden = admin_api.get(f"/api/v1/answers/{member_answer}")
    assert hidden.status_code == 200 and hidden.json()["answer"].startswith("(hidden")
    admin_pages, _ = session(console, admin_token)
    admin_seen = [
        hidden.text,
        admin_pages.get("/console/feedback").text,
        admin_pages.get("/console/answers").text,
        admin_pages.get("/console/answers", params={"q": "codename"}).text,
        admin_pages.get(f"/console/answers/{member_answer}").text,
        admin_pages.get("/console/knowledge", params={"q": QUESTION}).text,
    ]
    assert "(private conversation)" in admin_seen[1]  # the downvoted answer is listed, its words are not
    for text in admin_seen:
        assert leaked(text) == [] and "launch codename" not in text.replace(QUESTION, ""), text[:2000]
    # The member, by contrast, does find their own channel's canary (the filter is not simply "public only").
    assert SECRET_CANARY in console.bearer(member).get("/api/v1/search", params={"q": QUESTION}).text


def test_critiques_and_document_removal(console: Console, kb: Settings) -> None:
    asked = console.bearer().post("/api/v1/ask", json={"question": QUESTION}).json()
    critique = {"critique": "too vague", "correction": "See https://wiki.example.com/nightjar"}
    assert console.bearer().post(f"/api/v1/answers/{asked['answer_id']}/critique", json=critique).status_code == 200
    with raw_connection(kb) as conn:
        assert conn.execute("SELECT critique, source_uri FROM critiques").fetchall() == [("too vague", PUBLIC_URI)]
        document_id = conn.execute("SELECT id FROM documents WHERE uri = %s", (PUBLIC_URI,)).fetchone()[0]
    # The correction named the right page: it becomes an eval case on the Eval page.
    pages, csrf = session(console)
    refused = pages.post("/console/eval", data={"from_corrections": "1"}, files={"none": ("", b"")})
    assert refused.status_code == 403
    ran = pages.post("/console/eval", data={"from_corrections": "1", "csrf_token": csrf}, files={"none": ("", b"")})
    assert ran.status_code == 303, ran.text[:500]
    with raw_connection(kb) as conn:
        name, questions, results = conn.execute("SELECT name, questions, results FROM eval_runs").fetchone()
    assert (name, questions, [r["mode"] for r in results]) == ("corrections", 1, ["vector", "fulltext", "hybrid"])
    export = pages.get("/console/feedback/export", params={"format": "openai-sft"})
    assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
    assert pages.get("/console/feedback/export", params={"format": "pickle"}).status_code == 404
    shown = pages.get(f"/console/knowledge/documents/{document_id}")  # the document with its passages
    assert shown.status_code == 200 and "Nightjar" in shown.text, shown.text[:500]
    outsider = console.bearer(create_token(kb, user_id=OUTSIDER).token)
    assert outsider.post(f"/api/v1/documents/{document_id}/delete").status_code == 403
    removed = console.bearer().post(f"/api/v1/documents/{document_id}/delete")
    assert removed.status_code == 200 and removed.json()["uri"] == PUBLIC_URI
    assert console.bearer().post(f"/api/v1/documents/{document_id}/delete").status_code == 404
    hits = console.bearer().get("/api/v1/search", params={"q": "Nightjar team Tuesdays"}).json()
    assert all(hit["uri"] != PUBLIC_URI for hit in hits)


def test_search_is_the_json_of_lore_search_and_rejects_bad_parameters(console: Console, kb: Settings) -> None:
    api = console.bearer()
    hits = api.get("/api/v1/search", params={"q": "Nightjar team", "k": 2}).json()
    assert 1 <= len(hits) <= 2 and set(hits[0]) == {"chunk_id", "uri", "title", "score", "text"}
    explained = api.get("/api/v1/search", params={"q": "Nightjar team", "explain": "1"}).json()
    assert {"similarity", "page", "fulltext", "words", "feedback"} == set(explained[0]["why"])
    # hybrid reports the rarity-weighted share of the question's words each passage uses; vector mode none
    assert all(0.0 <= hit["why"]["words"] <= 1.0 for hit in explained)
    assert any(hit["why"]["words"] > 0 for hit in explained)
    by_meaning = api.get("/api/v1/search", params={"q": "Nightjar team", "explain": "1", "mode": "vector"}).json()
    assert by_meaning and all(hit["why"]["words"] is None for hit in by_meaning)
    # hybrid (the default) reports the page's similarity for a page of several passages, none for one passage
    with raw_connection(kb) as conn:
        passages = dict(conn.execute("SELECT document_id, count(*) FROM chunks GROUP BY document_id").fetchall())
    for hit in explained:
        assert (hit["why"]["page"] is None) == (passages[hit["document_id"]] == 1), hit
        if hit["why"]["page"] is not None:
            assert -1.0 <= hit["why"]["page"] <= 1.0
    for params in ({"q": ""}, {"q": "x", "k": "0"}, {"q": "x", "k": "many"}, {"q": "x", "mode": "psychic"}):
        response = api.get("/api/v1/search", params=params)
        assert response.status_code == 400 and response.json()["error"], params


def test_sign_in_with_slack(console: Console, kb: Settings, fake_slack) -> None:  # type: ignore[no-untyped-def]
    fake_slack.oidc_user = OUTSIDER
    client = console.client(follow_redirects=True)
    page = client.get("/console/auth/slack")
    assert page.status_code == 200 and f'data-user="{OUTSIDER}"' in page.text, page.text[:500]
    token_calls = fake_slack.calls_to("openid.connect.token")
    assert token_calls and token_calls[0]["client_secret"] == "console-tests-client-secret"
    assert leaked(client.get("/console/knowledge", params={"q": QUESTION}).text) == []
    # A callback that was not started here (no state cookie) signs nobody in.
    fake_slack.oidc_user = MEMBER
    stranger = console.client()
    forged = stranger.get("/console/auth/slack/callback", params={"code": "code-1", "state": "made-up"})
    assert forged.status_code == 401 and COOKIE not in stranger.cookies
    fake_slack.oidc_user = None  # the user cancels at Slack
    cancelled = console.client(follow_redirects=True).get("/console/auth/slack")
    assert cancelled.status_code == 401 and "Sign in to Lore" in cancelled.text


def slack_approves(client: httpx.Client) -> tuple[str, str]:
    """Start Sign in with Slack in `client` and let the fake Slack approve it: (code, state) of the callback."""
    start = client.get("/console/auth/slack")
    assert start.status_code == 303, start.text[:300]
    back = httpx.get(start.headers["location"], follow_redirects=False)
    assert back.status_code == 302
    query = parse_qs(urlsplit(back.headers["location"]).query)
    return query["code"][0], query["state"][0]


def test_sign_in_with_slack_checks_the_workspace_the_nonce_and_the_state(
    console: Console,
    kb: Settings,
    fake_slack,  # type: ignore[no-untyped-def]
    fake_openai: FakeOpenAI,
    tmp_path,
) -> None:
    from harness.slack_api import TEAM_ID
    from tests.web.conftest import console_env, start_console

    # A Slack user of another workspace: refused (403) with a page that says why, and no session.
    fake_slack.oidc_user, fake_slack.oidc_team = MEMBER, "T0ELSEWHERE"
    client = console.client(follow_redirects=True)
    refused = client.get("/console/auth/slack")
    assert refused.status_code == 403 and "T0ELSEWHERE" in refused.text and "another one" in refused.text
    assert COOKIE not in client.cookies and client.get("/console/ask").status_code == 401
    assert "slack_sign_in_refused status=403" in console.service.output()
    assert fake_slack.calls_to("auth.test")  # the workspace is the bot token's (no SLACK_TEAM_ID here)
    fake_slack.oidc_team = TEAM_ID
    assert 'data-user="U0MEMBER"' in console.client(follow_redirects=True).get("/console/auth/slack").text
    # A code Slack issued for another sign-in (its nonce) does not finish this one, even with this one's state.
    first, second = console.client(), console.client()
    code, _ = slack_approves(first)
    _, state = slack_approves(second)
    injected = second.get("/console/auth/slack/callback", params={"code": code, "state": state})
    assert injected.status_code == 401 and "nonce" in injected.text and not sets_session(injected)
    # A state cookie the console did not sign (planted by someone else) is not one.
    for planted in ("made-up", "made-up.nonce.0000"):
        code, _ = slack_approves(console.client())
        victim = console.client(cookies={"lore_oidc_state": planted})
        forged = victim.get("/console/auth/slack/callback", params={"code": code, "state": "made-up"})
        assert forged.status_code == 401 and not sets_session(forged)

    # SLACK_TEAM_ID names the workspace (several, comma-separated); Slack is asked for no other.
    env = console_env(fake_slack, fake_openai, SLACK_TEAM_ID="T0ELSEWHERE")
    other = start_console(env, tmp_path / "team.log")
    try:
        fake_slack.oidc_team = TEAM_ID
        client = other.client(follow_redirects=True)
        assert client.get("/console/auth/slack").status_code == 403 and COOKIE not in client.cookies
        authorize = fake_slack.calls_to("openid.connect.authorize")[-1]
        assert authorize["team"] == "T0ELSEWHERE"
        fake_slack.oidc_team = "T0ELSEWHERE"
        assert 'data-user="U0MEMBER"' in other.client(follow_redirects=True).get("/console/auth/slack").text
    finally:
        other.service.stop()
    # Neither SLACK_TEAM_ID nor a bot token: nobody can say which workspace is this one, so nobody signs in so.
    env = console_env(fake_slack, fake_openai)
    del env["SLACK_BOT_TOKEN"]
    unknown = start_console(env, tmp_path / "unknown.log")
    try:
        page = unknown.client(follow_redirects=True).get("/console/auth/slack")
        assert page.status_code == 403 and "SLACK_TEAM_ID" in page.text
    finally:
        unknown.service.stop()


@pytest.mark.parametrize("limit_mb", ["0.01"])
def test_an_upload_over_the_size_limit_is_refused_and_nothing_is_queued(
    kb: Settings,
    fake_slack,
    fake_openai: FakeOpenAI,
    tmp_path,
    limit_mb: str,  # type: ignore[no-untyped-def]
) -> None:
    from tests.web.conftest import console_env, start_console

    running = start_console(console_env(fake_slack, fake_openai, LORE_MAX_FILE_MB=limit_mb), tmp_path / "c.log")
    try:
        api = running.bearer()
        big = {"files": ("big.md", b"# Big\n\n" + b"word " * 5000, "text/markdown")}
        refused = api.post("/api/v1/ingest", files=big)
        assert refused.status_code == 413 and "limit" in refused.json()["error"]
        huge = {"files": ("huge.md", b"x" * 200_000, "text/markdown")}  # over the whole-form limit too
        assert api.post("/api/v1/ingest", files=huge).status_code == 413
        assert api.post("/api/v1/ingest", json={"urls": ["file:///etc/passwd"]}).status_code == 400
        assert api.post("/api/v1/ingest", json={}).status_code == 400
        time.sleep(0.2)
        assert count(kb, "ingest_jobs") == 0
        assert not any((kb.home / "uploads").glob("*/*")) if (kb.home / "uploads").exists() else True
    finally:
        running.service.stop()


def test_files_dropped_into_a_conversation_answer_there_only(
    console: Console, kb: Settings, celery_worker: object
) -> None:
    member = console.bearer(create_token(kb, user_id=MEMBER).token)
    outsider = console.bearer(create_token(kb, user_id=OUTSIDER).token)
    conversation = "c0nversation-0123456789"
    files = {"files": ("budget.md", ATTACHED.encode(), "text/markdown")}
    job = member.post(f"/api/v1/conversations/{conversation}/files", files=files).json()
    assert job["status"] in ("queued", "running", "done") and job["acl"][0].startswith("web-conversation:")

    def done() -> bool:
        found = member.get(f"/api/v1/conversations/{conversation}/jobs/{job['id']}").json()
        assert found["status"] != "failed", found
        return found["status"] == "done"

    from harness.polling import wait_until

    wait_until(done, timeout=120, what="the conversation's ingest job")
    there = member.post("/api/v1/ask", json={"question": BUDGET_QUESTION, "conversation": conversation}).json()
    assert ATTACHED_CODE in there["answer"] and there["citations"][0]["title"] == "Nightjar budget"
    # Not in another conversation, not outside one, not for another user with the same conversation id.
    elsewhere = [
        member.post("/api/v1/ask", json={"question": BUDGET_QUESTION, "conversation": "other-conversation-0001"}),
        member.post("/api/v1/ask", json={"question": BUDGET_QUESTION}),
        outsider.post("/api/v1/ask", json={"question": BUDGET_QUESTION, "conversation": conversation}),
        member.get("/api/v1/search", params={"q": BUDGET_QUESTION}),
        outsider.get(f"/api/v1/conversations/{conversation}/jobs/{job['id']}"),
    ]
    assert [r.status_code for r in elsewhere] == [200, 200, 200, 200, 404]
    assert all(ATTACHED_CODE not in r.text for r in elsewhere)
    assert member.post("/api/v1/conversations/bad id!/files", files=files).status_code in (400, 404)

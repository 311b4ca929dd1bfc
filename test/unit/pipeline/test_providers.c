/* Provider plumbing without I/O: retry delays, the chat request body, chat and search reply parsing. */
#include "core/json.h"
#include "pipeline/llm.h"
#include "pipeline/provider.h"
#include "pipeline/search.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

int main(void)
{
    provider_config_t cfg = {.backoff_ms = 1000, .max_backoff_ms = 30000};
    TAP_IS_INT(provider_backoff_ms(&cfg, 1, -1), 1000, "first retry after 1 s");
    TAP_IS_INT(provider_backoff_ms(&cfg, 2, -1), 2000, "then 2 s");
    TAP_IS_INT(provider_backoff_ms(&cfg, 4, -1), 8000, "then doubling");
    TAP_IS_INT(provider_backoff_ms(&cfg, 30, -1), 30000, "capped");
    TAP_IS_INT(provider_backoff_ms(&cfg, 1, 7), 7000, "Retry-After wins");
    TAP_IS_INT(provider_backoff_ms(&cfg, 1, 0), 0, "Retry-After: 0 retries at once");
    TAP_IS_INT(provider_backoff_ms(&cfg, 1, 3600), 30000, "a huge Retry-After is capped");

    llm_message_t msgs[] = {{"system", "Be \"brief\"."}, {"user", "Write about caf\xc3\xa9s"}};
    char *body = llm_request_body("m1", msgs, 2, 1, 500);
    TAP_IS_STR(body,
               "{\"model\":\"m1\",\"messages\":[{\"role\":\"system\",\"content\":\"Be \\\"brief\\\".\"},"
               "{\"role\":\"user\",\"content\":\"Write about caf\xc3\xa9s\"}],"
               "\"response_format\":{\"type\":\"json_object\"},\"max_tokens\":500}",
               "chat request body");
    free(body);
    body = llm_request_body("m1", msgs, 1, 0, 0);
    TAP_OK(strstr(body, "response_format") == NULL && strstr(body, "max_tokens") == NULL, "plain request");
    free(body);

    char err[256];
    llm_call_t call;
    memset(&call, 0, sizeof(call));
    const char *reply =
        "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"# Hi\"},"
        "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34}}";
    TAP_IS_INT(llm_parse_reply(reply, strlen(reply), &call, err, sizeof(err)), 0, "reply parsed");
    TAP_IS_STR(call.content, "# Hi", "content");
    TAP_IS_STR(call.finish_reason, "length", "finish_reason");
    TAP_IS_INT(call.prompt_tokens, 12, "prompt tokens");
    TAP_IS_INT(call.completion_tokens, 34, "completion tokens");
    free(call.content);
    memset(&call, 0, sizeof(call));
    const char *empty = "{\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":0}}";
    TAP_IS_INT(llm_parse_reply(empty, strlen(empty), &call, err, sizeof(err)), -1, "no choices refused");
    TAP_OK(call.err != NULL && strstr(call.err, "choices") != NULL, "reason: %s", call.err);
    TAP_IS_INT(call.prompt_tokens, 5, "tokens of an unusable reply still counted");
    TAP_IS_INT(llm_parse_reply("<html>", 6, &call, err, sizeof(err)), -1, "non-JSON refused");

    search_call_t sc;
    memset(&sc, 0, sizeof(sc));
    const char *sx = "{\"results\":[{\"url\":\"https://a.test/1\",\"title\":\"A\",\"content\":\"x\"},"
                     "{\"url\":\"https://a.test/1\",\"title\":\"dup\"},{\"url\":\"ftp://b.test\"},"
                     "{\"title\":\"no url\"},{\"url\":\"http://c.test/\",\"title\":\"C\"},"
                     "{\"url\":\"http://d.test/\"}]}";
    TAP_IS_INT(search_parse_reply(sx, strlen(sx), 0, 2, &sc), 0, "searxng reply parsed");
    TAP_IS_INT((long long)sc.count, 2, "duplicates, non-http and url-less results dropped, capped at 2");
    TAP_IS_STR(sc.results[0].url, "https://a.test/1", "first result");
    TAP_IS_STR(sc.results[1].title, "C", "second result is the next usable one");
    for (size_t i = 0; i < sc.count; i++) {
        free(sc.results[i].url);
        free(sc.results[i].title);
        free(sc.results[i].snippet);
    }
    free(sc.results);
    memset(&sc, 0, sizeof(sc));
    const char *br =
        "{\"web\":{\"results\":[{\"url\":\"https://e.test/\",\"title\":\"E\",\"description\":\"d\"}]}}";
    TAP_IS_INT(search_parse_reply(br, strlen(br), 1, 10, &sc), 0, "brave reply parsed");
    TAP_OK(sc.count == 1 && strcmp(sc.results[0].snippet, "d") == 0, "brave description is the snippet");
    free(sc.results[0].url);
    free(sc.results[0].title);
    free(sc.results[0].snippet);
    free(sc.results);
    memset(&sc, 0, sizeof(sc));
    TAP_IS_INT(search_parse_reply("{\"query\":\"x\"}", 13, 1, 10, &sc), 0,
               "brave without web section: no results");
    TAP_IS_INT(search_parse_reply("[1]", 3, 0, 10, &sc), -1, "searxng without results refused");
    return tap_done();
}

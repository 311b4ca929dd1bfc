/* Title replies: length window, distinctness (also against earlier titles), trimming, malformed replies. */
#include "pipeline/titles.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

int main(void)
{
    const char *t1 = "How to Brew Better Coffee at Home: A Practical Guide for Beginners";   /* 66 */
    const char *t2 = "Ten Espresso Mistakes That Ruin Your Morning Cup and How to Fix Them"; /* 68 */
    char reply[2048];
    snprintf(
        reply, sizeof(reply),
        "{\"titles\": [\"  %s  \", \"too short\", \"%s\", \"%s\", \"\\\"%s\\\"\", 42,"
        " \"A Title That Is Far Too Long To Be Accepted Because It Goes On And On Beyond Eighty Characters\","
        " \"Caf\xc3\xa9 Culture Around the World: What Every Coffee Lover Should Know\"]}",
        t1, t2, "how to brew better coffee at home: a practical guide for beginners", t2);
    char *out[5];
    char err[128];
    int n = titles_parse(reply, strlen(reply), 5, NULL, 0, out, err, sizeof(err));
    TAP_IS_INT(n, 3, "three usable distinct titles");
    TAP_IS_STR(out[0], t1, "trimmed");
    TAP_IS_STR(out[1], t2, "second");
    TAP_IS_STR(out[2], "Caf\xc3\xa9 Culture Around the World: What Every Coffee Lover Should Know",
               "length counted in characters, not bytes");
    for (int i = 0; i < n; i++)
        free(out[i]);

    const char *avoid[] = {"HOW TO BREW BETTER COFFEE AT HOME: A PRACTICAL GUIDE FOR BEGINNERS"};
    n = titles_parse(reply, strlen(reply), 1, avoid, 1, out, err, sizeof(err));
    TAP_IS_INT(n, 1, "count caps the result");
    TAP_IS_STR(out[0], t2, "an earlier title (any case) is skipped");
    free(out[0]);

    TAP_IS_INT(titles_parse("not json", 8, 3, NULL, 0, out, err, sizeof(err)), -1, "non-JSON refused");
    TAP_IS_INT(titles_parse("{\"items\": []}", 13, 3, NULL, 0, out, err, sizeof(err)), -1,
               "no titles list refused");
    TAP_IS_INT(titles_parse("{\"titles\": []}", 14, 3, NULL, 0, out, err, sizeof(err)), 0,
               "empty list: zero kept");

    char *prompt = titles_prompt("home coffee", 3, avoid, 1);
    TAP_OK(strstr(prompt, "Generate 5 titles") != NULL, "asks for two spare titles");
    TAP_OK(strstr(prompt, avoid[0]) != NULL, "lists the titles to avoid");
    TAP_OK(strstr(prompt, "{\"titles\"") != NULL, "names the reply shape");
    free(prompt);
    return tap_done();
}

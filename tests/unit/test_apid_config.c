/* sbx-apid configuration: defaults, the JSON config file, flag precedence and SIGHUP reload
 * (only run-time-safe settings change; a broken file changes nothing). */
#include "apid.h"
#include "unit.h"

static char *
write_tmp(const char *text)
{
    char path[] = "/tmp/sbx-unit-apid-cfg.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    safe_write(fd, text, strlen(text));
    close(fd);
    return xstrdup(path);
}

UNIT_TEST(apid_config, defaults_file_and_flags)
{
    sbx_error_t err = NULL;
    struct apid_config cfg;
    apid_config_init(&cfg);
    CU_ASSERT_STRING_EQUAL(cfg.listen, "127.0.0.1:8080");
    CU_ASSERT_STRING_EQUAL(cfg.data_dir, "/var/lib/sbx");
    CU_ASSERT_STRING_EQUAL(cfg.run_dir, "/run/sbx");
    CU_ASSERT_STRING_EQUAL(cfg.images_dir, "/var/lib/sbx/images");
    CU_ASSERT_EQUAL(cfg.min_timeout, 60);
    CU_ASSERT(cfg.api_key == NULL);

    cleanup_free char *file = write_tmp("{\"listen\":\"127.0.0.1:9000\",\"max-timeout\":7200,"
                                        "\"default-memory\":\"1Gi\",\"log-json\":true,"
                                        "\"api-key\":\"from-file\"}");
    char *argv[] = {"sbx-apid",  "--config", file,      "--listen", "127.0.0.1:9001",
                    "--max-cpu", "2",        "--agent", "none",     NULL};
    unsetenv("SBX_API_KEY");
    CU_ASSERT_EQUAL_FATAL(apid_config_parse(&cfg, 9, argv, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.listen, "127.0.0.1:9001"); /* flag wins over the file */
    CU_ASSERT_EQUAL(cfg.max_timeout, 7200);
    CU_ASSERT_EQUAL(cfg.default_memory, 1LL << 30);
    CU_ASSERT_EQUAL(cfg.max_cpu_milli, 2000);
    CU_ASSERT(cfg.log_json);
    CU_ASSERT_STRING_EQUAL(cfg.api_key, "from-file");

    /* Reload: the key and limits change, the listen address does not. */
    FILE *f = fopen(file, "we");
    fputs("{\"listen\":\"127.0.0.1:1\",\"api-key\":\"k2\",\"max-timeout\":60}", f);
    fclose(f);
    CU_ASSERT_EQUAL(apid_config_reload(&cfg, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.api_key, "k2");
    CU_ASSERT_EQUAL(cfg.max_timeout, 60);
    CU_ASSERT_STRING_EQUAL(cfg.listen, "127.0.0.1:9001");
    f = fopen(file, "we");
    fputs("{\"api-key\": ", f);
    fclose(f);
    CU_ASSERT(apid_config_reload(&cfg, &err) < 0);
    sbx_error_release(&err);
    CU_ASSERT_STRING_EQUAL(cfg.api_key, "k2");
    unlink(file);
    apid_config_free(&cfg);
    apid_log_setup(APID_LOG_INFO, false);
}

UNIT_TEST(apid_config, rejections)
{
    static const char *const bad[][3] = {
        {"--max-timeout", "-5", NULL}, {"--default-memory", "lots", NULL},
        {"--log-level", "loud", NULL}, {"--bogus", NULL, NULL},
        {"stray", NULL, NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        sbx_error_t err = NULL;
        struct apid_config cfg;
        apid_config_init(&cfg);
        char *argv[4] = {"sbx-apid", (char *)bad[i][0], (char *)bad[i][1], NULL};
        int argc = bad[i][1] ? 3 : 2;
        CU_ASSERT(apid_config_parse(&cfg, argc, argv, &err) < 0);
        sbx_error_release(&err);
        apid_config_free(&cfg);
    }
    sbx_error_t err = NULL;
    struct apid_config cfg;
    apid_config_init(&cfg);
    cleanup_free char *file = write_tmp("{\"unknown-setting\":1}");
    CU_ASSERT(apid_config_load_file(&cfg, file, &err) < 0);
    CU_ASSERT(err && strstr(err->msg, "unknown-setting") != NULL);
    sbx_error_release(&err);
    unlink(file);
    apid_config_free(&cfg);
}

/* The protocol between apid and sbx-launcher (apid/launcher/main.c): one SOCK_SEQPACKET
 * message "start\0ID\0DIR\0STATE_ROOT\0CGROUP_PARENT" per sandbox, answered "ok PID" (the
 * monitor's pid, its status pipe's read end attached with SCM_RIGHTS) or "err MESSAGE". */
#ifndef APID_LAUNCHER_H
#define APID_LAUNCHER_H

#define MSG_MAX 8192

#endif

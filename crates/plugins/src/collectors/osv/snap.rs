//! snap's OSv collector (`intelsdi-x/snap-plugin-collector-osv`, archived): its namespaces and
//! how each maps onto a skymeter metric, so that a snap task manifest selecting
//! `/intel/osv/...` metrics selects the same data here.
//!
//! snap's catalog (its `osv/metrics.go`, `GetMetricTypes`): `/intel/osv/cpu/cputime`,
//! `/intel/osv/memory/{free,total}` and 197 trace-point counters
//! `/intel/osv/trace/<group>/<name>`, where `<group>` comes from a fixed list of names per
//! group in the plugin (not from the trace point's name: `waitqueue_wake_one` is in group
//! `wait`). Its README lists the same namespaces with two typos (group `anync` for `async`,
//! `virtio_blk_read_config_blk_siz` for `..._blk_size`); both spellings are accepted here.

/// The namespace prefix of every metric of snap's OSv collector.
pub const SNAP_PREFIX: &str = "/intel/osv";

/// snap's trace-point groups and the trace points each holds, in snap's order.
pub const TRACE_GROUPS: &[(&str, &[&str])] = &[
    (
        "virtio",
        &[
            "virtio_wait_for_queue",
            "virtio_enable_interrupts",
            "virtio_disable_interrupts",
            "virtio_kicked_event_idx",
            "virtio_add_buf",
            "virtio_net_rx_packet",
            "virtio_net_rx_wake",
            "virtio_net_fill_rx_ring",
            "virtio_net_fill_rx_ring_added",
            "virtio_net_tx_packet",
            "virtio_net_tx_failed_add_buf",
            "virtio_net_tx_no_space_calling_gc",
            "virtio_net_tx_packet_size",
            "virtio_net_tx_xmit_one_failed_to_post",
            "virtio_blk_read_config_capacity",
            "virtio_blk_read_config_size_max",
            "virtio_blk_read_config_seg_max",
            "virtio_blk_read_config_geometry",
            "virtio_blk_read_config_blk_size",
            "virtio_blk_read_config_topology",
            "virtio_blk_read_config_wce",
            "virtio_blk_read_config_ro",
            "virtio_blk_make_request_seg_max",
            "virtio_blk_make_request_readonly",
            "virtio_blk_wake",
            "virtio_blk_strategy",
            "virtio_blk_req_ok",
            "virtio_blk_req_unsupp",
            "virtio_blk_req_err",
        ],
    ),
    (
        "net",
        &["net_packet_in", "net_packet_out", "net_packet_handling"],
    ),
    (
        "tcp",
        &[
            "tcp_state",
            "tcp_input_ack",
            "tcp_output",
            "tcp_output_error",
            "tcp_output_resched_start",
            "tcp_output_resched_end",
            "tcp_output_start",
            "tcp_output_ret",
            "tcp_output_just_ret",
            "tcp_output_cant_take_inp_lock",
            "tcp_timer_tso_flush",
            "tcp_timer_tso_flush_ret",
            "tcp_timer_tso_flush_err",
        ],
    ),
    (
        "memory",
        &[
            "memory_malloc",
            "memory_malloc_mempool",
            "memory_malloc_large",
            "memory_malloc_page",
            "memory_free",
            "memory_realloc",
            "memory_page_alloc",
            "memory_page_free",
            "memory_huge_failure",
            "memory_reclaim",
            "memory_wait",
            "memory_mmap",
            "memory_mmap_err",
            "memory_mmap_ret",
            "memory_munmap",
            "memory_munmap_err",
            "memory_munmap_ret",
        ],
    ),
    (
        "callout",
        &[
            "callout_init",
            "callout_reset",
            "callout_stop_wait",
            "callout_stop",
            "callout_thread_waiting",
            "callout_thread_dispatching",
        ],
    ),
    (
        "wait",
        &["waitqueue_wait", "waitqueue_wake_one", "waitqueue_wake_all"],
    ),
    (
        "async",
        &[
            "async_timer_task_create",
            "async_timer_task_destroy",
            "async_timer_task_reschedule",
            "async_timer_task_cancel",
            "async_timer_task_shutdown",
            "async_timer_task_fire",
            "async_timer_task_misfire",
            "async_timer_task_insert",
            "async_timer_task_remove",
            "async_worker_started",
            "async_worker_timer_fire",
            "async_worker_timer_fire_ret",
            "async_worker_fire",
            "async_worker_fire_ret",
        ],
    ),
    (
        "vfs",
        &[
            "vfs_open",
            "vfs_open_ret",
            "vfs_open_err",
            "vfs_close",
            "vfs_close_ret",
            "vfs_close_err",
            "vfs_mknod",
            "vfs_mknod_ret",
            "vfs_mknod_err",
            "vfs_lseek",
            "vfs_lseek_ret",
            "vfs_lseek_err",
            "vfs_pread",
            "vfs_pread_ret",
            "vfs_pread_err",
            "vfs_pwrite",
            "vfs_pwrite_ret",
            "vfs_pwrite_err",
            "vfs_pwritev",
            "vfs_pwritev_ret",
            "vfs_pwritev_err",
            "vfs_ioctl",
            "vfs_ioctl_ret",
            "vfs_ioctl_err",
            "vfs_fsync",
            "vfs_fsync_ret",
            "vfs_fsync_err",
            "vfs_fstat",
            "vfs_fstat_ret",
            "vfs_fstat_err",
            "vfs_readdir",
            "vfs_readdir_ret",
            "vfs_readdir_err",
            "vfs_mkdir",
            "vfs_mkdir_ret",
            "vfs_mkdir_err",
            "vfs_rmdir",
            "vfs_rmdir_ret",
            "vfs_rmdir_err",
            "vfs_rename",
            "vfs_rename_ret",
            "vfs_rename_err",
            "vfs_chdir",
            "vfs_chdir_ret",
            "vfs_chdir_err",
            "vfs_fchdir",
            "vfs_fchdir_ret",
            "vfs_fchdir_err",
            "vfs_link",
            "vfs_link_ret",
            "vfs_link_err",
            "vfs_symlink",
            "vfs_symlink_ret",
            "vfs_symlink_err",
            "vfs_unlink",
            "vfs_unlink_ret",
            "vfs_unlink_err",
            "vfs_stat",
            "vfs_stat_ret",
            "vfs_stat_err",
            "vfs_lstat",
            "vfs_lstat_ret",
            "vfs_lstat_err",
            "vfs_statfs",
            "vfs_statfs_ret",
            "vfs_statfs_err",
            "vfs_fstatfs",
            "vfs_fstatfs_ret",
            "vfs_fstatfs_err",
            "vfs_getcwd",
            "vfs_getcwd_ret",
            "vfs_getcwd_err",
            "vfs_dup",
            "vfs_dup_ret",
            "vfs_dup_err",
            "vfs_dup3",
            "vfs_dup3_ret",
            "vfs_dup3_err",
            "vfs_fcntl",
            "vfs_fcntl_ret",
            "vfs_fcntl_err",
            "vfs_access",
            "vfs_access_ret",
            "vfs_access_err",
            "vfs_isatty",
            "vfs_isatty_ret",
            "vfs_isatty_err",
            "vfs_truncate",
            "vfs_truncate_ret",
            "vfs_truncate_err",
            "vfs_ftruncate",
            "vfs_ftruncate_ret",
            "vfs_ftruncate_err",
            "vfs_fallocate",
            "vfs_fallocate_ret",
            "vfs_fallocate_err",
            "vfs_utimes",
            "vfs_utimes_ret",
            "vfs_utimes_err",
            "vfs_utimensat",
            "vfs_utimensat_ret",
            "vfs_utimensat_err",
            "vfs_futimens",
            "vfs_futimens_ret",
            "vfs_futimens_err",
            "vfs_chmod",
            "vfs_chmod_ret",
            "vfs_chmod_err",
            "vfs_fchmod",
            "vfs_fchmod_ret",
            "vfs_fchown",
            "vfs_fchown_ret",
        ],
    ),
];

/// skymeter's metric for OSv's free memory (`GET /os/memory/free`, snap `/memory/free`).
pub const MEMORY_FREE: &str = "memory.available";
/// `GET /os/memory/total`, snap `/memory/total`.
pub const MEMORY_TOTAL: &str = "memory.total";
/// The `time_ms` of `GET /trace/count`, snap `/cpu/cputime`.
pub const CPUTIME: &str = "osv.cpu.cputime";
/// Prefix of the trace-point counters: `osv.trace.<group>.<name>`.
pub const TRACE_PREFIX: &str = "osv.trace.";

/// snap's group of a trace point: the group its catalog puts it in, else the part of the
/// name before the first `_` (`sched_switch` → `sched`), for counters snap did not list.
pub fn trace_group(name: &str) -> &str {
    for (group, names) in TRACE_GROUPS {
        if names.contains(&name) {
            return group;
        }
    }
    name.split('_').next().unwrap_or(name)
}

/// The skymeter metric of a trace point counter.
pub fn trace_metric(name: &str) -> String {
    format!("{TRACE_PREFIX}{}.{name}", trace_group(name))
}

/// Every trace point of snap's catalog, as (group, name).
pub fn trace_points() -> impl Iterator<Item = (&'static str, &'static str)> {
    TRACE_GROUPS
        .iter()
        .flat_map(|(g, names)| names.iter().map(move |n| (*g, *n)))
}

/// A namespace part as snap's README spells it → as its code does.
fn fix_typo(part: &str) -> &str {
    match part {
        "anync" => "async",
        "virtio_blk_read_config_blk_siz" => "virtio_blk_read_config_blk_size",
        other => other,
    }
}

/// One namespace part: `*`, or lowercase letters, digits and `_`, possibly with `*` inside
/// (kept as a glob).
fn is_part(p: &str) -> bool {
    !p.is_empty()
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'*')
}

/// The skymeter metric name, or metric glob, that selects what snap's namespace
/// `/intel/osv/<rest…>` selects. `rest` is the namespace after [`SNAP_PREFIX`], split at
/// `/`; a part may be `*` (snap's wildcard), which becomes a glob. `None` when snap's OSv
/// collector has no such namespace.
///
/// - `["memory", "free"]` → `memory.available`; `["memory", "total"]` → `memory.total`;
///   `["memory", "*"]` → `memory.{available,total}`
/// - `["cpu", "cputime"]` or `["cpu", "*"]` → `osv.cpu.cputime`
/// - `["trace", group, name]` → `osv.trace.<group>.<name>` (either part may be `*`);
///   `["trace", "*"]` → `osv.trace.*`. Trace points outside snap's list are accepted (OSv
///   has more than snap listed) when the name is lowercase letters, digits and `_`.
/// - `["*"]` → everything the collector emits for snap's namespaces.
pub fn metric_for_snap_namespace(rest: &[&str]) -> Option<String> {
    let rest: Vec<&str> = rest.iter().map(|p| fix_typo(p)).collect();
    if !rest.iter().all(|p| is_part(p)) {
        return None;
    }
    let concrete = |p: &str| !p.contains('*');
    match rest.as_slice() {
        ["*"] => Some(format!(
            "{{{MEMORY_FREE},{MEMORY_TOTAL},{CPUTIME},{TRACE_PREFIX}*}}"
        )),
        ["*", "*"] => Some(format!("{{{MEMORY_FREE},{MEMORY_TOTAL},{CPUTIME}}}")),
        ["memory" | "*", "free"] => Some(MEMORY_FREE.into()),
        ["memory" | "*", "total"] => Some(MEMORY_TOTAL.into()),
        ["memory", "*"] => Some(format!("{{{MEMORY_FREE},{MEMORY_TOTAL}}}")),
        ["cpu", "cputime" | "*"] | ["*", "cputime"] => Some(CPUTIME.into()),
        ["trace", "*"] => Some(format!("{TRACE_PREFIX}*")),
        ["trace" | "*", group, name] if concrete(name) => {
            // A named trace point lives in one group only: a namespace naming another
            // group would select nothing, so it is not one of snap's.
            let real = trace_group(name);
            (!concrete(group) || *group == real).then(|| trace_metric(name))
        }
        ["trace" | "*", group, name] => Some(format!("{TRACE_PREFIX}{group}.{name}")),
        _ => None,
    }
}

/// Every namespace snap's OSv collector documents, with the skymeter metric it maps to, in
/// snap's order (cpu, memory, then the trace points group by group).
pub fn snap_namespaces() -> Vec<(String, String)> {
    let mut out = vec![
        (format!("{SNAP_PREFIX}/cpu/cputime"), CPUTIME.to_string()),
        (
            format!("{SNAP_PREFIX}/memory/free"),
            MEMORY_FREE.to_string(),
        ),
        (
            format!("{SNAP_PREFIX}/memory/total"),
            MEMORY_TOTAL.to_string(),
        ),
    ];
    for (group, name) in trace_points() {
        out.push((
            format!("{SNAP_PREFIX}/trace/{group}/{name}"),
            format!("{TRACE_PREFIX}{group}.{name}"),
        ));
    }
    out
}

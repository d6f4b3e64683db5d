//! Table definitions shared by both backends. Written by hand (not `diesel print-schema`)
//! because the same Rust types must map to the SQLite and the PostgreSQL migrations:
//! ids are `Text` (UUIDv7 strings), times `Timestamp` (UTC), JSON `Text`.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        email -> Nullable<Text>,
        roles -> Text,
        created_at -> Timestamp,
        username_canonical -> Nullable<Text>,
        username_skeleton -> Nullable<Text>,
        username_skeleton_cased -> Nullable<Text>,
        disabled -> Bool,
    }
}

diesel::table! {
    password_tokens (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sessions (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    login_failures (id) {
        id -> Text,
        username -> Text,
        remote_addr -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    customers (id) {
        id -> Text,
        crm_ref -> Nullable<Text>,
        created_at -> Timestamp,
        merged_into -> Nullable<Text>,
    }
}

diesel::table! {
    customer_handles (channel, handle) {
        channel -> Text,
        handle -> Text,
        customer_id -> Text,
        external_user_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    inbound_messages (id) {
        id -> Text,
        channel -> Text,
        external_id -> Text,
        customer_id -> Text,
        author_handle -> Text,
        text -> Text,
        received_at -> Timestamp,
        due_at -> Timestamp,
        state -> Text,
        closed_reason -> Nullable<Text>,
        created_at -> Timestamp,
        at_risk_at -> Timestamp,
        at_risk_noted_at -> Nullable<Timestamp>,
        breached_noted_at -> Nullable<Timestamp>,
        settled_at -> Nullable<Timestamp>,
        visibility -> Nullable<Text>,
    }
}

diesel::table! {
    drafts (id) {
        id -> Text,
        inbound_id -> Text,
        author_id -> Text,
        state -> Text,
        revision -> Integer,
        text -> Text,
        check_report -> Text,
        approvals_needed -> Integer,
        post_id -> Nullable<Text>,
        posted_at -> Nullable<Timestamp>,
        post_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        post_url -> Nullable<Text>,
        approved_at -> Nullable<Timestamp>,
        route -> Nullable<Text>,
    }
}

diesel::table! {
    draft_revisions (draft_id, revision) {
        draft_id -> Text,
        revision -> Integer,
        text -> Text,
        author_id -> Text,
        check_report -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    reviews (id) {
        id -> Text,
        draft_id -> Text,
        revision -> Integer,
        reviewer_id -> Text,
        decision -> Text,
        comment -> Text,
        created_at -> Timestamp,
        voided_at -> Nullable<Timestamp>,
        step -> Nullable<Integer>,
    }
}

diesel::table! {
    review_groups (id) {
        id -> Text,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    review_group_members (group_id, user_id) {
        group_id -> Text,
        user_id -> Text,
        added_at -> Timestamp,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        kind -> Text,
        unique_key -> Nullable<Text>,
        payload -> Text,
        state -> Text,
        attempts -> Integer,
        max_attempts -> Integer,
        next_attempt_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        channel -> Nullable<Text>,
    }
}

diesel::table! {
    channel_state (channel, key) {
        channel -> Text,
        key -> Text,
        value -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit_head (id) {
        id -> Integer,
        size -> BigInt,
        tree_size -> BigInt,
    }
}

diesel::table! {
    audit_entries (seq) {
        seq -> BigInt,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        subject -> Nullable<Text>,
        body -> Text,
        leaf_hash -> Text,
    }
}

diesel::table! {
    audit_checkpoints (tree_size) {
        tree_size -> BigInt,
        root_hash -> Text,
        note -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    audit_tree (level, idx) {
        level -> Integer,
        idx -> BigInt,
        hash -> Binary,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Integer,
        origin -> Text,
        verifier_key -> Text,
        retention_years -> Integer,
        created_at -> Timestamp,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(password_tokens -> users (user_id));
diesel::joinable!(customer_handles -> customers (customer_id));
diesel::joinable!(inbound_messages -> customers (customer_id));
diesel::joinable!(drafts -> inbound_messages (inbound_id));
diesel::joinable!(draft_revisions -> drafts (draft_id));
diesel::joinable!(reviews -> drafts (draft_id));
diesel::joinable!(review_group_members -> review_groups (group_id));
diesel::joinable!(review_group_members -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    password_tokens,
    login_failures,
    customers,
    customer_handles,
    inbound_messages,
    drafts,
    draft_revisions,
    reviews,
    review_groups,
    review_group_members,
    jobs,
    channel_state,
    audit_head,
    audit_entries,
    audit_checkpoints,
    audit_tree,
    audit_log,
);

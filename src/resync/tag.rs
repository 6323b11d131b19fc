//! The restart tag: a key in the local memcached that says "this memcached
//! has been resynced". A memcached that restarts loses it, which is how the
//! daemon learns it must do a full resync. It is removed when a full resync
//! starts, and written when a resync leaves no vbucket behind.

use crate::memcached::{Connection, McError};
use std::time::Duration;

/// The tag's key (an `astaire\` key: never copied between nodes).
pub const TAG_KEY: &[u8] = b"astaire\\\\tag";
pub const TAG_VALUE: &[u8] = b"{}";

/// Marks the local memcached as resynced.
pub async fn write(local: &mut Connection) -> Result<(), McError> {
    local.set(TAG_KEY, TAG_VALUE, 0, 0).await
}

/// Forgets that the local memcached was resynced.
pub async fn remove(local: &mut Connection) -> Result<(), McError> {
    local.delete(TAG_KEY).await.map(|_| ())
}

/// Whether the tag is in the memcached at `local` (`None`: unreachable
/// within a few seconds).
pub async fn present(local: &str) -> Option<bool> {
    let check = async {
        let mut conn = Connection::connect(local, Duration::from_secs(2)).await.ok()?;
        conn.get(TAG_KEY).await.ok().map(|item| item.is_some())
    };
    tokio::time::timeout(Duration::from_secs(3), check).await.ok().flatten()
}

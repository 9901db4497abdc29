//! `state` and `list`.

use crate::config::RuntimeConfig;
use crate::error::Result;
use crate::state::State;

pub fn state(cfg: &RuntimeConfig, id: &str) -> Result<String> {
    let st = State::load(&cfg.root, id)?;
    Ok(serde_json::to_string_pretty(&st.to_runc_json(&cfg.root)).unwrap_or_default())
}

pub fn list(cfg: &RuntimeConfig) -> Result<String> {
    let mut out = String::from("ID\tPID\tSTATUS\tBUNDLE\tCREATED\n");
    if let Ok(rd) = std::fs::read_dir(&cfg.root) {
        let mut ids: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        for id in ids {
            if let Ok(st) = State::load(&cfg.root, &id) {
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    st.id,
                    st.pid,
                    st.status(&cfg.root).as_str(),
                    st.bundle.display(),
                    st.created
                ));
            }
        }
    }
    Ok(out)
}

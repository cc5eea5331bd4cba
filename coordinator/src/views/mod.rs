//! What people see of a job, apart from the scheduling core: a snapshot of it
//! ([`status`]), the live display on stderr ([`progress`]), the end-of-job report
//! ([`report`]), the status page ([`http`]), when the job and its phases started and
//! ended ([`timeline`]), every attempt ([`attempts`]), the task list a page at a time
//! ([`listing`]), the job's history as one HTML file ([`history`]); started and stopped
//! together by [`monitor`].

pub mod attempts;
pub mod history;
pub mod http;
pub mod listing;
pub mod monitor;
pub mod progress;
pub mod report;
pub mod status;
pub mod timeline;

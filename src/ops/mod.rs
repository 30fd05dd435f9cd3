//! The operator's side: what `netwarden status` shows of a running guard,
//! and what `netwarden report` makes of a day of decision logs,
//! put together from its admin API's answers and its policy file. Pure:
//! JSON and the policy in, text or JSON out; fetching is the CLI's.

pub mod report;
pub mod status;

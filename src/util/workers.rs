//! Work spread over threads an item a thread at a time, for items large in memory: each item
//! is done whole by one thread, so that at most one item a thread is held at once (under
//! rayon's work stealing, a thread waiting on a parallel call inside an item may start
//! another item, and then another), and the parallel calls inside an item run on its thread,
//! so that the threads busy are no more than the cores.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// `work` done on every item on up to `threads` threads, an item a thread at a time, and
/// each result handed to `take` on the caller's thread in the order of the items, as soon as
/// those before it were: results done early wait, the others are not held. When `take` says
/// `false`, no item is started after it (those started are done, and not taken). With two
/// workers or more, parallel calls inside `work` run on its thread alone; with one (one thread,
/// or one item), `work` runs on the caller's thread, its parallel calls on the global pool.
pub fn one_item_a_thread<T, R>(
    items: Vec<T>,
    threads: usize,
    work: impl Fn(T) -> R + Sync,
    mut take: impl FnMut(R) -> bool,
) where
    T: Send,
    R: Send,
{
    let workers = threads.min(items.len());
    if workers < 2 {
        for item in items {
            if !take(work(item)) {
                return;
            }
        }
        return;
    }
    let queue = Mutex::new(items.into_iter().enumerate());
    let stop = AtomicBool::new(false);
    let next = || {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next()
    };
    let (done, results) = mpsc::channel::<(usize, R)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done = done.clone();
            let (next, work) = (&next, &work);
            scope.spawn(move || {
                // A pool of this thread alone: a parallel call inside `work` cannot hand
                // part of it to a thread that is busy with another item.
                let alone = rayon::ThreadPoolBuilder::new().num_threads(1).build();
                while let Some((at, item)) = next() {
                    let result = match &alone {
                        Ok(pool) => pool.install(|| work(item)),
                        Err(_) => work(item),
                    };
                    if done.send((at, result)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done);
        // Results in the order of the items: those that came early wait for the ones before.
        let mut waiting: BTreeMap<usize, R> = BTreeMap::new();
        let mut wanted = 0;
        for (at, result) in results.iter() {
            if stop.load(Ordering::Relaxed) {
                continue;
            }
            waiting.insert(at, result);
            while let Some(result) = waiting.remove(&wanted) {
                wanted += 1;
                if !take(result) {
                    stop.store(true, Ordering::Relaxed);
                    waiting.clear();
                    break;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;
    use std::sync::atomic::AtomicUsize;

    fn all<T: Send, R: Send>(
        items: Vec<T>,
        threads: usize,
        work: impl Fn(T) -> R + Sync,
    ) -> Vec<R> {
        let mut out = Vec::new();
        one_item_a_thread(items, threads, work, |r| {
            out.push(r);
            true
        });
        out
    }

    #[test]
    fn results_come_in_the_order_of_the_items_whatever_the_threads() {
        let items: Vec<u64> = (0..100).collect();
        for threads in [1, 2, 3, 8, 200] {
            let squares = all(items.clone(), threads, |i| {
                // Uneven work, so that the items finish out of order.
                std::thread::sleep(std::time::Duration::from_micros((i * 37) % 200));
                i * i
            });
            assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn no_more_items_than_threads_are_in_work_at_once_even_with_parallel_calls_inside() {
        let (busy, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let items: Vec<usize> = (0..40).collect();
        all(items, 2, |_| {
            let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            // A parallel call inside the work, which under the global pool could let this
            // thread start another item while it waits.
            let sum: u64 = (0..10_000u64).into_par_iter().sum();
            std::thread::sleep(std::time::Duration::from_millis(1));
            busy.fetch_sub(1, Ordering::SeqCst);
            sum
        });
        assert!(most.load(Ordering::SeqCst) <= 2);
    }

    #[test]
    fn parallel_calls_inside_the_work_run_on_its_thread() {
        let pools = all(vec![(); 4], 2, |()| rayon::current_num_threads());
        assert_eq!(pools, vec![1; 4]);
    }

    #[test]
    fn no_item_is_started_once_take_says_stop_and_none_after_it_is_taken() {
        for threads in [1, 2, 4] {
            // Items started once `take` has said stop: at most one a thread, each of which
            // had its item in hand just before (a bound on all the items started would
            // depend on how soon the taking thread runs, on a busy machine).
            let (said_stop, late) = (AtomicBool::new(false), AtomicUsize::new(0));
            let mut taken = Vec::new();
            one_item_a_thread(
                (0..200).collect(),
                threads,
                |i: usize| {
                    if said_stop.load(Ordering::SeqCst) {
                        late.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    i
                },
                |i| {
                    taken.push(i);
                    if i >= 10 {
                        said_stop.store(true, Ordering::SeqCst);
                    }
                    i < 10
                },
            );
            assert_eq!(taken, (0..=10).collect::<Vec<_>>(), "{threads}");
            assert!(late.load(Ordering::SeqCst) <= threads, "{threads}");
        }
    }
}
